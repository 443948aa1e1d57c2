package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/internal/httpguard"
	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goodBody is what the origin serves for a path once it behaves.
func goodBody(path string) string { return strings.Repeat(path+";", 20000/len(path)) }

// TestOriginFaultsStoreNothingWrong: an origin that resets mid-body, lies
// about Content-Length, stalls before or inside its answer, floods headers
// or speaks no HTTP fails the request it fails (502, 504, or a response cut
// off so the client sees an error, never a short body taken for a whole
// one), stores nothing, and the next request after it behaves gets the
// right object.
func TestOriginFaultsStoreNothingWrong(t *testing.T) {
	var mu sync.Mutex
	faulty := map[string]bool{}
	release := make(chan struct{})
	defer close(release)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fault := !faulty[r.URL.Path] && r.URL.Path != "/after-long"
		faulty[r.URL.Path] = true // one faulty answer per path
		mu.Unlock()
		body := goodBody(r.URL.Path)
		if r.URL.Path == "/long" {
			body = "0123456789"
		}
		if !fault {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
			return
		}
		raw := func() net.Conn {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			return c
		}
		head := "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n"
		switch r.URL.Path {
		case "/reset": // half the body, then a TCP reset
			c := raw()
			fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body[:len(body)/2])
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		case "/short": // declares more than it sends, then closes
			c := raw()
			fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body[:len(body)/2])
			c.Close()
		case "/long": // sends more than it declares
			c := raw()
			fmt.Fprintf(c, "%sContent-Length: 10\r\n\r\n0123456789HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!", head)
			<-release
			c.Close()
		case "/stall-head": // never answers
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/stall-body": // answers, then stops sending
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body[:100])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/flood": // more header than any client takes
			c := raw()
			io.WriteString(c, head+strings.Repeat("X-Flood: "+strings.Repeat("f", 100)+"\r\n", 2000)+"\r\n")
			c.Close()
		case "/garbage":
			c := raw()
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
			c.Close()
		case "/bad-chunk":
			c := raw()
			io.WriteString(c, head+"Transfer-Encoding: chunked\r\n\r\n64\r\n"+body[:100]+"\r\nzz\r\n")
			c.Close()
		case "/bad-length":
			c := raw()
			io.WriteString(c, head+"Content-Length: 5, 6\r\n\r\nhello!")
			c.Close()
		}
	})
	cfg := writeFile(t, "outpost.yaml", "hosts:\n  - names: [a.example]\n    origins: [\""+o.URL+"\"]\n"+
		"    timeouts: { response_header: 300ms, idle_read: 300ms }\n")
	tn := startNode(t, "--config", cfg, "--cache-dir", t.TempDir())
	// A new connection each time: on a reused one, net/http's client
	// would send a GET again by itself after a close without response.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (status int, body string, err error) {
		req, _ := http.NewRequest(http.MethodGet, tn.url+path, nil)
		req.Host = "a.example"
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	stored := func(path string) bool {
		obj, err := tn.n.store.Get(context.Background(), "http://a.example"+path)
		if err != nil {
			return false
		}
		obj.Close()
		return true
	}
	for _, tt := range []struct {
		path       string
		wantStatus int // 0: the request fails: 502, no response, or a body that breaks off
	}{
		{"/reset", 0}, {"/short", 0}, {"/stall-body", 0}, {"/bad-chunk", 0},
		{"/stall-head", http.StatusGatewayTimeout},
		{"/flood", http.StatusBadGateway}, {"/garbage", http.StatusBadGateway}, {"/bad-length", http.StatusBadGateway},
	} {
		t.Run(tt.path, func(t *testing.T) {
			status, body, err := get(tt.path)
			if tt.wantStatus == 0 {
				// A 502 when the fill failed before the response began;
				// else the response breaks off.
				assert.True(t, err != nil || status == http.StatusBadGateway, "the client sees the request fail (status %d)", status)
				assert.Less(t, len(body), len(goodBody(tt.path)), "a short body")
			} else {
				assert.Equal(t, tt.wantStatus, status)
			}
			require.NoError(t, tn.n.edge.Wait(context.Background()))
			assert.False(t, stored(tt.path), "nothing stored")
			status, body, err = get(tt.path)
			require.NoError(t, err)
			assert.Equal(t, 200, status)
			assert.True(t, body == goodBody(tt.path), "the next request gets the whole object, not %d bytes", len(body))
			assert.Equal(t, 2, o.count(tt.path))
		})
	}
	t.Run("/long", func(t *testing.T) {
		// The declared ten bytes are the response; what follows is no
		// response of anyone's.
		for range 2 {
			status, body, err := get("/long")
			require.NoError(t, err)
			assert.Equal(t, 200, status)
			assert.Equal(t, "0123456789", body)
		}
		status, body, err := get("/after-long")
		require.NoError(t, err)
		assert.Equal(t, 200, status)
		assert.True(t, body == goodBody("/after-long"), "the extra bytes answered nothing: %.80q", body)
	})
	assert.Greater(t, metric(t, tn, "outpost_fill_errors_total"), 0.0)
}

// TestHandlerPanic: a panic in a handler of the public listener is answered
// 500 and logged with its stack; the node keeps serving. A panic after the
// response began breaks that connection; http.ErrAbortHandler (how the
// edge aborts a response) passes untouched.
func TestHandlerPanic(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	reg := prometheus.NewRegistry()
	guard, err := httpguard.New(httpguard.Config{Registerer: reg})
	require.NoError(t, err)
	var served atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			var m map[string]int
			m["boom"]++ // a nil map: a bug
		case "/panic-late":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "01234")
			w.(http.Flusher).Flush()
			panic("late")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		served.Add(1)
		io.WriteString(w, "fine")
	})
	srv := httptest.NewUnstartedServer(guard.Handler(recoverPanics(log, reg, app)))
	srv.Config.ConnContext = guard.ConnContext
	srv.Listener = guard.Listener(srv.Listener)
	srv.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/panic")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, "500 Internal Server Error\n", string(b))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	logMu.Lock()
	assert.Contains(t, logs.String(), "level=ERROR msg=\"handler panic\"")
	assert.Contains(t, logs.String(), "assignment to entry in nil map")
	assert.Contains(t, logs.String(), "TestHandlerPanic.func", "the stack names the handler")
	logMu.Unlock()

	resp, err = http.Get(srv.URL + "/panic-late")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	assert.Error(t, err, "a response that began breaks off")

	resp, err = http.Get(srv.URL + "/abort")
	if err == nil {
		resp.Body.Close()
	}
	assert.Error(t, err)

	resp, err = http.Get(srv.URL + "/ok")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "fine", string(b), "still serving")
	var panics float64
	if s := metrictest.Series(t, reg, "outpost_http_panics_total"); len(s) > 0 {
		panics = s[0].GetCounter().GetValue()
	}
	assert.Equal(t, 2.0, panics, "the abort is no panic")
	logMu.Lock()
	assert.Equal(t, 2, strings.Count(logs.String(), "handler panic"))
	logMu.Unlock()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
