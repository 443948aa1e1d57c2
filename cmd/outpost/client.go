package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/purge"
)

// adminClient is what the client commands share: the admin URL and token.
type adminClient struct {
	admin string
	token string
	http  *http.Client
}

func newAdminClient(admin string) (*adminClient, error) {
	if err := checkURL(admin); err != nil {
		return nil, badField("--admin", 0, "%v", err)
	}
	return &adminClient{admin: strings.TrimSuffix(admin, "/"), token: os.Getenv(tokenEnv), http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// cmdPurge is `outpost purge`: it sends one POST /purge with every target
// given, prints what was purged, and exits non-zero on any failure.
func cmdPurge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:9091", "admin API base `URL`")
	soft := fs.Bool("soft", false, "mark matches stale instead of removing them")
	all := fs.Bool("all", false, "purge everything")
	file := fs.String("file", "", "read URLs to purge from `FILE`, one per line (- for stdin)")
	var req purge.Request
	fs.Var((*listFlag)(&req.URLs), "url", "purge this `URL`, every variant (repeatable)")
	fs.Var((*listFlag)(&req.Prefixes), "prefix", "purge every URL starting with this `URL` (repeatable)")
	fs.Var((*listFlag)(&req.Tags), "tag", "purge objects with this surrogate key (repeatable)")
	fs.Var((*listFlag)(&req.Hosts), "host", "purge everything of this `HOST` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outpost purge: unexpected argument %q (URLs go with --url)\n", fs.Arg(0))
		return 2
	}
	if *file != "" {
		urls, err := readURLFile(*file)
		if err != nil {
			fmt.Fprintf(stderr, "outpost purge: %v\n", err)
			return 2
		}
		req.URLs = append(req.URLs, urls...)
	}
	req.All, req.Soft = *all, *soft
	if !req.All && len(req.URLs)+len(req.Prefixes)+len(req.Tags)+len(req.Hosts) == 0 {
		fmt.Fprintln(stderr, "outpost purge: nothing to purge: give --url, --prefix, --tag, --host, --file or --all")
		return 2
	}
	ac, err := newAdminClient(*admin)
	if err != nil {
		fmt.Fprintf(stderr, "outpost purge: %v\n", err)
		return 2
	}
	c := &purge.Client{Admin: ac.admin, Token: ac.token, HTTP: ac.http}
	res, err := c.Purge(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "outpost purge: %v\n", err)
		return 1
	}
	mode := "hard"
	if req.Soft {
		mode = "soft"
	}
	fmt.Fprintf(stdout, "purge %s accepted (%s): %d bans, %d objects removed so far\n", res.ID, mode, res.Bans, res.Purged)
	for _, t := range []struct {
		kind string
		list []string
	}{{"url", req.URLs}, {"prefix", req.Prefixes}, {"tag", req.Tags}, {"host", req.Hosts}} {
		for _, v := range t.list {
			fmt.Fprintf(stdout, "  %s %s\n", t.kind, v)
		}
	}
	if req.All {
		fmt.Fprintln(stdout, "  all")
	}
	if res.Warning != "" {
		fmt.Fprintf(stderr, "outpost purge: warning: %s\n", res.Warning)
	}
	return 0
}

func readURLFile(name string) ([]string, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	urls, err := purge.ReadURLs(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return urls, nil
}

// cmdWarm is `outpost warm`: it queues URLs to be fetched into the cache.
func cmdWarm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:9091", "admin API base `URL`")
	file := fs.String("file", "", "read URLs from `FILE`, one per line (- for stdin)")
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	urls := fs.Args()
	if *file != "" {
		more, err := readURLFile(*file)
		if err != nil {
			fmt.Fprintf(stderr, "outpost warm: %v\n", err)
			return 2
		}
		urls = append(urls, more...)
	}
	if len(urls) == 0 {
		fmt.Fprintln(stderr, "outpost warm: no URLs: give them as arguments or with --file")
		return 2
	}
	for _, u := range urls {
		if err := checkURL(u); err != nil {
			fmt.Fprintf(stderr, "outpost warm: %v\n", err)
			return 2
		}
	}
	ac, err := newAdminClient(*admin)
	if err != nil {
		fmt.Fprintf(stderr, "outpost warm: %v\n", err)
		return 2
	}
	var out struct {
		Queued int    `json:"queued"`
		Error  string `json:"error"`
	}
	if err := ac.post(ctx, "/warm", warmRequest{URLs: urls}, &out, http.StatusAccepted); err != nil {
		fmt.Fprintf(stderr, "outpost warm: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "queued %d of %d URLs for warming\n", out.Queued, len(urls))
	return 0
}

// post sends a JSON body to the admin API and decodes the answer; an
// unexpected status is an error carrying the server's message.
func (c *adminClient) post(ctx context.Context, path string, body, out any, wantStatus int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.admin+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != wantStatus {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	return json.Unmarshal(raw, out)
}
