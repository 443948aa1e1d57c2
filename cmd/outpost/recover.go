package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// recoverPanics answers a request whose handler panicked with 500 (or, when
// the response had begun, breaks the connection so the client sees a
// failure rather than a short body), logs the panic with its stack at
// error level, and counts it in outpost_http_panics_total. The node keeps
// serving. http.ErrAbortHandler is the edge's way to abort a response and
// passes through untouched.
func recoverPanics(log *slog.Logger, reg prometheus.Registerer, next http.Handler) http.Handler {
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_http_panics_total",
		Help: "Requests whose handler panicked (answered 500, logged with the stack).",
	})
	reg.MustRegister(panics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw := panicWriters.Get().(*panicWriter)
		pw.ResponseWriter, pw.wrote = w, false
		defer func() {
			v := recover()
			wrote := pw.wrote
			pw.ResponseWriter = nil
			panicWriters.Put(pw)
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			panics.Inc()
			stack := make([]byte, 64<<10)
			stack = stack[:runtime.Stack(stack, false)]
			log.Error("handler panic", "method", r.Method, "host", r.Host, "uri", r.RequestURI,
				"panic", fmt.Sprint(v), "stack", string(stack))
			if wrote {
				panic(http.ErrAbortHandler)
			}
			h := w.Header()
			clear(h)
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
			h["Cache-Control"] = []string{"no-store"}
			h["Connection"] = []string{"close"}
			http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		}()
		next.ServeHTTP(pw, r)
	})
}

var panicWriters = sync.Pool{New: func() any { return new(panicWriter) }}

// panicWriter notes whether a response has begun, keeping the writer's
// optional capabilities (Flush, ReadFrom for sendfile, Unwrap for
// http.ResponseController).
type panicWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *panicWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *panicWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *panicWriter) ReadFrom(src io.Reader) (int64, error) {
	w.wrote = true
	return io.Copy(w.ResponseWriter, src)
}

func (w *panicWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *panicWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
