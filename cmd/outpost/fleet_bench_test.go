package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkFleetPurgePropagation measures, on ten nodes on loopback (a
// shield and nine edges behind it, one NATS server), the time from the
// admin API's answer to a purge — the purge is then durable in the stream
// — to the moment the last node holds it, and reports its median and 99th
// percentile. Each iteration is one URL purge through a different edge.
func BenchmarkFleetPurgePropagation(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "x")
	}))
	b.Cleanup(origin.Close)
	natsAddr, _ := runNATS(b)
	bus := busFile(b, "nats://"+natsAddr)
	shield := startNode(b, "--name", "shield", "--config", bus, "--origin", origin.URL)
	nodes := []*testNode{shield}
	for i := range 9 {
		nodes = append(nodes, startNode(b, "--name", fmt.Sprintf("edge-%d", i), "--config", bus, "--origin", origin.URL, "--parent", shield.url))
	}
	var lags []time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		id := adminPurge(b, nodes[1+i%9], fmt.Sprintf(`{"urls": ["http://static.example.com/%d.css"]}`, i))
		answered := time.Now()
		pending := slices.Clone(nodes)
		for len(pending) > 0 {
			pending = slices.DeleteFunc(pending, func(tn *testNode) bool { return applied(tn, id) })
			if len(pending) > 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		lags = append(lags, time.Since(answered))
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}
