package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRecoverPanics is what the panic guard adds to every request of
// the public listener.
func BenchmarkRecoverPanics(b *testing.B) {
	h := recoverPanics(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
