package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// insecureClient talks HTTP/1.1 to plain and TLS targets alike, without
// verifying the benchmark's self-signed certificates.
func insecureClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		},
	}
}

// originCount asks the origin how many requests it served (for one path,
// or all).
func originCount(origin, path string) (int64, error) {
	u := origin + "/__count"
	if path != "" {
		u += "?path=" + url.QueryEscape(path)
	}
	resp, err := insecureClient(1).Get(u)
	if err != nil {
		return 0, fmt.Errorf("origin count: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// cmdWarm fetches every object twice through a cache and checks each
// answer; it prints how many origin requests the second pass caused (0:
// everything is cached).
func cmdWarm(args []string) error {
	fs := flag.NewFlagSet("warm", flag.ExitOnError)
	base := fs.String("base", "", "cache base URL")
	many := fs.Int("many", 10000, "distinct 1 KiB objects")
	origin := fs.String("origin", "", "origin base URL (to count the second pass's fetches)")
	fs.Parse(args)
	paths := append([]string(nil), hotPaths...)
	for i := range *many {
		paths = append(paths, manyPath(i))
	}
	client := insecureClient(8)
	var before int64
	for pass := range 2 {
		if pass == 1 && *origin != "" {
			var err error
			if before, err = originCount(*origin, ""); err != nil {
				return err
			}
		}
		work := make(chan string)
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for range 8 {
			wg.Go(func() {
				for p := range work {
					if err := fetchCheck(client, *base+p, p); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			})
		}
		for _, p := range paths {
			work <- p
		}
		close(work)
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return err
		}
	}
	if *origin == "" {
		fmt.Println(0)
		return nil
	}
	after, err := originCount(*origin, "")
	if err != nil {
		return err
	}
	fmt.Println(after - before)
	return nil
}

// fetchCheck GETs u and checks status, length and content.
func fetchCheck(c *http.Client, u, path string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	size, _, _ := objectSize(path)
	if resp.StatusCode != http.StatusOK || string(b) != string(body(path, size)) {
		return fmt.Errorf("%s: status %d, %d bytes, want 200 and %d bytes of the object", u, resp.StatusCode, len(b), size)
	}
	return nil
}

// cmdWait waits until url answers 200.
func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	u := fs.String("url", "", "URL")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	fs.Parse(args)
	c := insecureClient(1)
	c.Timeout = 2 * time.Second
	deadline := time.Now().Add(*timeout)
	for {
		resp, err := c.Get(*u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", *u, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cmdCoalesce connects n clients, then has all of them GET one cold URL at
// the same instant; it reports their latency (request written to last
// byte read) and how many requests for the URL reached the origin.
func cmdCoalesce(args []string) error {
	fs := flag.NewFlagSet("coalesce", flag.ExitOnError)
	raw := fs.String("url", "", "cold URL through the cache")
	n := fs.Int("n", 200, "clients")
	origin := fs.String("origin", "", "origin base URL")
	fs.Parse(args)
	u, err := url.Parse(*raw)
	if err != nil {
		return err
	}
	size, _, err := objectSize(u.Path)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	for i := range conns {
		if conns[i], err = net.DialTimeout("tcp", u.Host, 5*time.Second); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n")
	start := make(chan struct{})
	lat := make([]time.Duration, *n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			<-start
			c.SetDeadline(time.Now().Add(30 * time.Second))
			t0 := time.Now()
			if _, err := c.Write(req); err != nil {
				failed.Add(1)
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				failed.Add(1)
				return
			}
			got, err := io.Copy(io.Discard, resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || got != int64(size) {
				failed.Add(1)
				return
			}
			lat[i] = time.Since(t0)
		})
	}
	close(start)
	wg.Wait()
	var ok []time.Duration
	for _, d := range lat {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return errors.New("no request succeeded")
	}
	slices.Sort(ok)
	fetches := int64(-1)
	if *origin != "" {
		if fetches, err = originCount(*origin, u.Path); err != nil {
			return err
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("RIG requests=%d errors=%d origin_fetches=%d min_ms=%.1f p50_ms=%.1f max_ms=%.1f\n",
		len(ok), failed.Load(), fetches, ms(ok[0]), ms(ok[len(ok)/2]), ms(ok[len(ok)-1]))
	return nil
}

// cmdHandshake opens TLS 1.3 connections (X25519, as OpenSSL clients
// negotiate with every server here) from c workers for d, each carrying one
// HTTP/1.1 request with Connection: close. With -resume every worker
// resumes the session of its previous connection (a session ticket), so
// after its first connection every handshake is a resumption.
func cmdHandshake(args []string) error {
	fs := flag.NewFlagSet("handshake", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port")
	path := fs.String("path", "/obj/1k/hot", "request path")
	c := fs.Int("c", 32, "concurrent connections")
	d := fs.Duration("d", 10*time.Second, "duration")
	resume := fs.Bool("resume", false, "resume sessions")
	fs.Parse(args)
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	var done, resumed, failed atomic.Int64
	deadline := time.Now().Add(*d)
	t0 := time.Now()
	var wg sync.WaitGroup
	for range *c {
		wg.Go(func() {
			cfg := &tls.Config{
				InsecureSkipVerify: true,
				ServerName:         "localhost",
				MinVersion:         tls.VersionTLS13,
				CurvePreferences:   []tls.CurveID{tls.X25519},
				NextProtos:         []string{"http/1.1"},
			}
			if *resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			for time.Now().Before(deadline) {
				did, err := oneConnection(*addr, cfg, req)
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
				if did {
					resumed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	fmt.Printf("RIG requests=%d secs=%.3f rps=%.1f errors=%d resumed=%d\n",
		done.Load(), secs, float64(done.Load())/secs, failed.Load(), resumed.Load())
	return nil
}

// oneConnection makes one TLS connection, one request, and reads the
// response to the end (which also reads the session tickets).
func oneConnection(addr string, cfg *tls.Config, req []byte) (resumed bool, err error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return false, err
	}
	if _, err := c.Write(req); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return c.ConnectionState().DidResume, nil
}
