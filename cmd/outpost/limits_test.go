package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimitsAnswerAndCount: each limit of the limits: block, when hit,
// answers its status (or closes, for timeouts) and counts in its metric.
func TestLimitsAnswerAndCount(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "posted %d", len(b))
			return
		}
		io.WriteString(w, strings.Repeat("0123456789", 100))
	})
	cfg := writeFile(t, "outpost.yaml", `limits:
  max_connections: 3
  request_line: 512B
  header_bytes: 2KiB
  header_count: 10
  header_timeout: 300ms
  body_timeout: 300ms
  idle_timeout: 300ms
  max_ranges: 2
`)
	tn := startNode(t, "--origin", o.URL, "--config", cfg)
	addr := strings.TrimPrefix(tn.url, "http://")
	rejected := func(reason string) float64 { return metricWith(t, tn, "outpost_http_rejected_total", "reason", reason) }
	timeouts := func(phase string) float64 { return metricWith(t, tn, "outpost_http_timeouts_total", "phase", phase) }

	t.Run("request line, header bytes, header count", func(t *testing.T) {
		for _, tt := range []struct {
			give       string
			wantStatus int
			wantReason string
		}{
			{"GET /" + strings.Repeat("a", 600) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_line_length"},
			{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 2<<10) + "\r\n\r\n", 431, "header_bytes"},
			{"GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: 1\r\n", 10) + "\r\n", 431, "header_count"},
		} {
			statuses, closed := sendRaw(t, addr, tt.give, false, nil)
			assert.Equal(t, []int{tt.wantStatus}, statuses, tt.wantReason)
			assert.True(t, closed)
			assert.Equal(t, 1.0, rejected(tt.wantReason))
		}
	})

	t.Run("header timeout", func(t *testing.T) {
		statuses, closed := sendRaw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", false, nil)
		assert.Equal(t, []int{http.StatusRequestTimeout}, statuses)
		assert.True(t, closed)
		assert.Equal(t, 1.0, timeouts("header"))
	})

	t.Run("body timeout", func(t *testing.T) {
		statuses, closed := sendRaw(t, addr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", false, nil)
		assert.Equal(t, []int{http.StatusBadRequest}, statuses)
		assert.True(t, closed)
		assert.Equal(t, 1.0, timeouts("body"))
		assert.Zero(t, o.count("/upload"), "nothing reached the origin")
	})

	t.Run("idle timeout", func(t *testing.T) {
		before := timeouts("idle")
		statuses, closed := sendRaw(t, addr, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n", false, nil)
		assert.Equal(t, []int{200}, statuses, "answered, then closed when idle")
		assert.True(t, closed)
		assert.Equal(t, before+1, timeouts("idle"))
	})

	t.Run("max ranges", func(t *testing.T) {
		fetch(t, tn.url+"/ranged")
		resp, body := fetch(t, tn.url+"/ranged", "Range", "bytes=0-1,500-501")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "multipart/byteranges")
		resp, body = fetch(t, tn.url+"/ranged", "Range", "bytes=0-1,200-201,500-501")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "three parts: the whole")
		assert.Len(t, body, 1000)
		assert.Equal(t, 1.0, metric(t, tn, "outpost_ranges_over_limit_total"))
	})

	t.Run("max connections", func(t *testing.T) {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		require.Eventually(t, func() bool { return metric(t, tn, "outpost_http_connections") == 0 }, 5*time.Second, 5*time.Millisecond)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range 3 {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			held = append(held, c)
		}
		require.Eventually(t, func() bool { return metric(t, tn, "outpost_http_connections") == 3 }, 5*time.Second, 5*time.Millisecond)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		assert.Equal(t, 1.0, metric(t, tn, "outpost_http_connections_refused_total"))

		held[0].Close()
		require.Eventually(t, func() bool { return metric(t, tn, "outpost_http_connections") == 2 }, 5*time.Second, 5*time.Millisecond)
		statuses, _ := sendRaw(t, addr, "GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, nil)
		assert.Equal(t, []int{200}, statuses, "a slot freed serves again")
	})
}

// TestMaxObjectIsServedNotStored: an object over storage.max_object (and,
// with a disk, storage.disk.max_object) is served whole but not stored.
// With a Content-Length, Cache-Status says so; without one, the header
// goes out before the body outgrows the limit.
func TestMaxObjectIsServedNotStored(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big)
		case "/big-unsized":
			io.WriteString(w, big)
			w.(http.Flusher).Flush()
		default:
			io.WriteString(w, "small")
		}
	})
	cfg := writeFile(t, "outpost.yaml", "storage:\n  max_object: 16KiB\n  disk: { max_object: 32KiB }\n")
	tn := startNode(t, "--origin", o.URL, "--config", cfg, "--cache-dir", t.TempDir())
	for range 2 {
		resp, body := fetch(t, tn.url+"/big")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, big, body)
		assert.Equal(t, "outpost; fwd=miss; fwd-status=200", resp.Header.Get("Cache-Status"))
		resp, body = fetch(t, tn.url+"/big-unsized")
		assert.Equal(t, big, body)
		fetch(t, tn.url+"/small")
	}
	assert.Equal(t, 2, o.count("/big"), "never stored")
	assert.Equal(t, 2, o.count("/big-unsized"), "never stored")
	assert.Equal(t, 1, o.count("/small"))
}

// TestMaxVariants: cache.max_variants bounds the variants kept per URL;
// the oldest goes first.
func TestMaxVariants(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "X-V")
		io.WriteString(w, "variant "+r.Header.Get("X-V"))
	})
	cfg := writeFile(t, "outpost.yaml", "cache:\n  max_variants: 2\n")
	tn := startNode(t, "--origin", o.URL, "--config", cfg)
	get := func(v string) string {
		resp, body := fetch(t, tn.url+"/v", "X-V", v)
		require.Equal(t, "variant "+v, body)
		return resp.Header.Get("Cache-Status")
	}
	for _, v := range []string{"a", "b", "c"} {
		get(v)
		require.NoError(t, tn.n.edge.Wait(context.Background()))
	}
	assert.Contains(t, get("c"), "hit")
	assert.Contains(t, get("b"), "hit")
	assert.NotContains(t, get("a"), "hit", "the oldest of three went")
	assert.Equal(t, 4, o.count("/v"))
}

// TestFillLimitsFromConfig: limits.max_fills reaches the edge: with one
// fill running, a miss for another object is answered 503 and counted, and
// the origin sees one request.
func TestFillLimitsFromConfig(t *testing.T) {
	release := make(chan struct{})
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "body")
	})
	tn := startNode(t, "--origin", o.URL, "--config", writeFile(t, "outpost.yaml", "limits:\n  max_fills: 1\n  max_waiters: 8\n"))
	done := make(chan int)
	go func() {
		resp, err := http.Get(tn.url + "/slow")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return o.count("/slow") == 1 }, 5*time.Second, 5*time.Millisecond)
	resp, err := http.Get(tn.url + "/other")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Equal(t, 1.0, metricWith(t, tn, "outpost_fills_refused_total", "limit", "max_fills"))
	assert.Zero(t, o.count("/other"))
	close(release)
	assert.Equal(t, http.StatusOK, <-done)
}

func TestLimitsConfigErrors(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{"limits:\n  max_connections: -1\n", "limits.max_connections"},
		{"limits:\n  request_line: 10B\n", "limits.request_line"},
		{"limits:\n  request_line: 8KiB\n  header_bytes: 4KiB\n", "limits.request_line"},
		{"limits:\n  header_timeout: 0s\n", "limits.header_timeout"},
		{"limits:\n  body_timeout: soon\n", "limits.body_timeout"},
		{"limits:\n  max_range: 3\n", "max_range"},
		{"limits:\n  max_fills: -1\n", "limits.max_fills"},
		{"limits:\n  max_waiters: -5\n", "limits.max_waiters"},
		{"cache:\n  max_variants: -2\n", "cache.max_variants"},
		{"storage:\n  disk: { max_object: 3XB }\n", "storage.disk.max_object"},
	} {
		t.Setenv(tokenEnv, "")
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"serve", "--origin", "http://o", "--config", writeFile(t, "o.yaml", tt.give)}, &stdout, &stderr)
		assert.Equal(t, 2, code, "%q: %s", tt.give, stderr.String())
		assert.Contains(t, stderr.String(), tt.want)
	}
}

// metricWith returns the value of the series of a metric whose label has
// the value given.
func metricWith(t *testing.T, tn *testNode, name, label, value string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, tn.n.reg, name) {
		if metrictest.Label(m, label) == value {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
