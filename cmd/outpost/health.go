package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdHealth is `outpost health`: it asks a node's admin listener whether it
// runs (/healthz) or, with --ready, whether it is ready to serve (/readyz),
// and exits 0 if so, 1 if not. Containers use it as their HEALTHCHECK: the
// image has no shell or curl.
func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:9091", "admin API base `URL`")
	ready := fs.Bool("ready", false, "ask /readyz (listening, disk index loaded, purges replayed, not draining) rather than /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	ac, err := newAdminClient(*admin)
	if err != nil {
		fmt.Fprintf(stderr, "outpost health: %v\n", err)
		return 2
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ac.admin+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "outpost health: %v\n", err)
		return 2
	}
	resp, err := ac.http.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "outpost health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "outpost health: %s: %s %s", path, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}
