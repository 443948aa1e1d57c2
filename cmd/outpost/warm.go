package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/outpost-cdn/outpost/internal/httpurl"
)

const (
	warmQueue   = 10_000 // URLs waiting to be fetched
	warmWorkers = 4      // fetches at once
)

// warmer serves POST /warm: URLs are queued and fetched into the cache in
// the background by a few workers, each request going through the edge's
// own path (lookup, coalescing, storing) as a client's miss would.
type warmer struct {
	edge   http.Handler
	log    *slog.Logger
	queue  chan string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWarmer(edge http.Handler, log *slog.Logger) *warmer {
	w := &warmer{edge: edge, log: log, queue: make(chan string, warmQueue)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for range warmWorkers {
		w.wg.Go(w.work)
	}
	return w
}

// Close stops the workers; queued URLs are dropped.
func (w *warmer) Close() error {
	w.cancel()
	w.wg.Wait()
	return nil
}

func (w *warmer) work() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case u := <-w.queue:
			w.fetch(u)
		}
	}
}

// fetch runs one GET through the edge, discarding the body.
func (w *warmer) fetch(raw string) {
	defer func() {
		// The edge aborts a response whose upstream body broke.
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			panic(p)
		}
	}()
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, raw, nil)
	if err != nil {
		return
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = u.RequestURI()
	req.TLS = isTLS(u.Scheme)
	req.Header.Set("User-Agent", "outpost-warm")
	rw := &discardWriter{h: make(http.Header)}
	w.edge.ServeHTTP(rw, req)
	w.log.Debug("warmed", "url", raw, "status", rw.status, "cache", rw.h.Get("Cache-Status"))
}

// warmRequest is the body of POST /warm.
type warmRequest struct {
	URLs []string `json:"urls"`
}

func (w *warmer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", "POST")
		jsonError(rw, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req warmRequest
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(rw, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	if dec.More() {
		jsonError(rw, http.StatusBadRequest, "bad JSON: more than one value")
		return
	}
	if len(req.URLs) == 0 {
		jsonError(rw, http.StatusBadRequest, "no urls to warm")
		return
	}
	for _, u := range req.URLs {
		if err := checkURL(u); err != nil {
			jsonError(rw, http.StatusBadRequest, err.Error())
			return
		}
	}
	if free := cap(w.queue) - len(w.queue); len(req.URLs) > free {
		jsonError(rw, http.StatusServiceUnavailable, fmt.Sprintf("warm queue full: %d free places for %d urls", free, len(req.URLs)))
		return
	}
	queued := 0
	for _, u := range req.URLs {
		select {
		case w.queue <- u:
			queued++
		default:
		}
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusAccepted)
	json.NewEncoder(rw).Encode(map[string]int{"queued": queued})
}

// checkURL accepts absolute http(s) URLs only.
func checkURL(raw string) error {
	if _, err := httpurl.Parse(raw); err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	return nil
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// discardWriter is a ResponseWriter that keeps the status and header and
// drops the body.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
