package purge

import (
	"context"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gather returns the value of every sample reg holds, by metric name and
// label values ("name" or "name{v1,v2}"); histograms give their count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						name += ","
					}
					name += l.GetValue()
				}
				name += "}"
			}
			out[name] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, Registerer: reg, CommitDelay: testCommitDelay})
	store(t, tier, storage.Meta{Key: "k", URL: "http://a.test/x", Tags: []string{"t"}, ResponseTime: clk.Now().Add(-time.Hour)})
	mustPurge(t, ix, Request{Tags: []string{"t"}, Hosts: []string{"b.test"}})
	mustPurge(t, ix, Request{All: true, Soft: true})
	clk.Advance(testCommitDelay)
	require.NoError(t, ix.Sweep(context.Background()))

	got := gather(t, reg)
	assert.Equal(t, map[string]float64{
		"outpost_purge_bans_total{tag,hard}":   1,
		"outpost_purge_bans_total{host,hard}":  1,
		"outpost_purge_bans_total{all,soft}":   1,
		"outpost_purge_active_bans":            0,
		"outpost_purge_swept_objects_total":    1,
		"outpost_purge_eviction_delay_seconds": 1,
		"outpost_purge_walks_total{complete}":  1,
		"outpost_purge_retired_bans_total":     3,
	}, got)

	_, err := New(Config{Canonicalize: canonicalize, Tier: tier, Registerer: reg})
	assert.ErrorContains(t, err, "Config.Registerer", "registering twice")
}
