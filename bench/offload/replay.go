package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is a cache to replay a trace through: a command that starts it,
// with placeholders filled in per run (see expand), and configuration
// templates rendered into the run's scratch directory first.
type target struct {
	Name      string
	Command   string
	Templates []string // files rendered into {dir}, named without a .tmpl suffix
}

// runConfig is what one replay needs beside the trace and the target.
type runConfig struct {
	Budget      int64  // {memory}
	Disk        int64  // {disk}; 0 means the target runs without one
	Port        int    // {port}: the cache's listener
	AdminPort   int    // {admin}
	Concurrency int    // clients replaying the trace
	Verify      bool   // compare every body byte, not only length and ends
	Scratch     string // parent of the per-run directory {dir}
	Scrape      string // URL template of a Prometheus endpoint read at the end; "" for none
	Log         io.Writer
}

// replayResult is what a replay measured.
type replayResult struct {
	Target         string
	Requests       int64
	Bytes          int64 // body bytes the clients received
	OriginRequests int64
	OriginBytes    int64
	Errors         int64
	Wall           time.Duration
	PeakRSS        int64         // highest resident memory of the target's processes together
	CPU            time.Duration // CPU time the target's processes used during the replay
	FirstError     string
	Metrics        string // outpost_memory_* lines scraped at the end
}

func (r replayResult) ByteHitRatio() float64   { return 1 - ratio(r.OriginBytes, r.Bytes) }
func (r replayResult) ObjectHitRatio() float64 { return 1 - ratio(r.OriginRequests, r.Requests) }

// expand fills in a command or template: {port}, {admin}, {origin} (the
// origin's URL), {origin_port}, {origin_host} (host:port), {memory} and
// {disk} (sizes as Outpost reads them, e.g. 64MiB), {memory_bytes},
// {memory_mb}, {disk_bytes}, {disk_mb}, {dir} (a scratch directory for this
// run).
func expand(s string, vars map[string]string) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

func replay(ctx context.Context, reqs []request, tg target, o *origin, cfg runConfig) (replayResult, error) {
	res := replayResult{Target: tg.Name}
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, tg.Name)
	dir, err := os.MkdirTemp(cfg.Scratch, "run-"+safe+"-")
	if err != nil {
		return res, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return res, err
	}
	os.Chmod(dir, 0o755) // peers that drop privileges read their files here
	defer os.RemoveAll(dir)
	vars := map[string]string{
		"port":         strconv.Itoa(cfg.Port),
		"admin":        strconv.Itoa(cfg.AdminPort),
		"origin":       o.URL(),
		"origin_host":  o.ln.Addr().String(),
		"origin_port":  strconv.Itoa(o.ln.Addr().(*net.TCPAddr).Port),
		"memory":       sizeFlag(cfg.Budget),
		"memory_bytes": strconv.FormatInt(cfg.Budget, 10),
		"memory_mb":    strconv.FormatInt(cfg.Budget>>20, 10),
		"disk":         sizeFlag(cfg.Disk),
		"disk_bytes":   strconv.FormatInt(cfg.Disk, 10),
		"disk_mb":      strconv.FormatInt(cfg.Disk>>20, 10),
		"dir":          dir,
		"user":         currentUser(),
	}
	for _, t := range tg.Templates {
		b, err := os.ReadFile(t)
		if err != nil {
			return res, fmt.Errorf("template: %w", err)
		}
		name := strings.TrimSuffix(filepath.Base(t), ".tmpl")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(expand(string(b), vars)), 0o644); err != nil {
			return res, err
		}
	}
	cmdline := expand(tg.Command, vars)
	fmt.Fprintf(cfg.Log, "%s: %s\n", tg.Name, cmdline)
	if !strings.ContainsAny(cmdline, ";&|") {
		cmdline = "exec " + cmdline // the target is the process started
	}
	cmd := exec.Command("bash", "-c", cmdline)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("%s: start: %w", tg.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	base := fmt.Sprintf("http://127.0.0.1:%d", cfg.Port)
	client := &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.Concurrency,
			DisableCompression:  true,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		Timeout: 2 * time.Minute,
	}
	defer client.CloseIdleConnections()
	if err := waitReady(ctx, client, base, exited); err != nil {
		return res, fmt.Errorf("%s: %w", tg.Name, err)
	}
	o.reset()
	sampler := startRSSSampler(cmd.Process.Pid, 100*time.Millisecond)
	cpu0 := treeCPU(cmd.Process.Pid)
	start := time.Now()
	var next, nreq, nbytes, nerr atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(reqs)) {
					return
				}
				r := reqs[i]
				n, err := fetch(ctx, client, base, r, o, cfg.Verify)
				nreq.Add(1)
				nbytes.Add(n)
				if err != nil {
					nerr.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				}
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(start)
	res.CPU = treeCPU(cmd.Process.Pid) - cpu0
	res.PeakRSS = sampler.stop()
	res.Requests, res.Bytes, res.Errors = nreq.Load(), nbytes.Load(), nerr.Load()
	res.OriginRequests, res.OriginBytes = o.requests.Load(), o.bytes.Load()
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	if cfg.Scrape != "" {
		res.Metrics = scrape(client, expand(cfg.Scrape, vars))
	}
	select {
	case err := <-exited:
		exited <- err
		return res, fmt.Errorf("%s exited during the replay: %v", tg.Name, err)
	default:
	}
	return res, ctx.Err()
}

// fetch requests one object through the cache and checks its body: length
// and both ends, or every byte with verify. It returns the bytes received.
func fetch(ctx context.Context, c *http.Client, base string, r request, o *origin, verify bool) (int64, error) {
	path := fmt.Sprintf("/obj/%d/%d", r.id, r.size)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = "bench.example"
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	want := o.body(r.id, r.size)
	var n int64
	var bad bool
	if verify {
		buf := make([]byte, 64<<10)
		for {
			k, err := resp.Body.Read(buf)
			if k > 0 {
				if n+int64(k) > int64(len(want)) || !bytes.Equal(buf[:k], want[n:n+int64(k)]) {
					bad = true
				}
				n += int64(k)
			}
			if err != nil {
				break
			}
		}
	} else {
		head := make([]byte, min(64, r.size))
		k, _ := io.ReadFull(resp.Body, head)
		n = int64(k)
		bad = !bytes.Equal(head[:k], want[:k])
		var tail tailWriter
		m, _ := io.Copy(&tail, resp.Body)
		n += m
		if m > 0 && n == r.size {
			t := tail.last()
			bad = bad || !bytes.Equal(t, want[r.size-int64(len(t)):])
		}
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return n, fmt.Errorf("%s: status %d", path, resp.StatusCode)
	case n != r.size:
		return n, fmt.Errorf("%s: %d bytes, want %d", path, n, r.size)
	case bad:
		return n, fmt.Errorf("%s: body differs from the origin's", path)
	}
	return n, nil
}

// tailWriter keeps the last 64 bytes written to it.
type tailWriter struct {
	buf [64]byte
	n   int64
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if len(p) >= len(t.buf) {
		copy(t.buf[:], p[len(p)-len(t.buf):])
	} else {
		copy(t.buf[:], t.buf[len(p):])
		copy(t.buf[len(t.buf)-len(p):], p)
	}
	t.n += int64(len(p))
	return len(p), nil
}

func (t *tailWriter) last() []byte { return t.buf[len(t.buf)-int(min(t.n, int64(len(t.buf)))):] }

// waitReady waits for the cache to answer GET /probe through to the origin.
func waitReady(ctx context.Context, c *http.Client, base string, exited chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/probe", nil)
		req.Host = "bench.example"
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case e := <-exited:
			exited <- e
			return fmt.Errorf("exited before it was ready: %v", e)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 60s: %w", err)
		}
	}
}

// stop ends the target's process group: SIGTERM, then SIGKILL after 10 s.
func stop(cmd *exec.Cmd, exited chan error) {
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // children that outlived the leader
}

// sizeFlag formats n as Outpost's size flags read it.
func sizeFlag(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// currentUser is the name of the user running the replay ({user}).
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "nobody"
}

// scrape reads the outpost_memory_* and go_memstats_heap_inuse lines of a
// Prometheus endpoint.
func scrape(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return "scrape: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "outpost_memory_") || strings.HasPrefix(line, "outpost_tiered_") || strings.HasPrefix(line, "outpost_disk_bytes") ||
			strings.HasPrefix(line, "outpost_disk_objects") || strings.HasPrefix(line, "go_memstats_heap_inuse_bytes ") ||
			strings.HasPrefix(line, "go_gc_duration_seconds_count") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
