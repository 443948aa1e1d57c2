package purge

import (
	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the package's Prometheus collectors:
//
//	outpost_purge_bans_total{kind,mode}      bans recorded, here or from the fleet (mode hard or soft)
//	outpost_purge_active_bans                bans not yet retired (Index.Len)
//	outpost_purge_swept_objects_total        objects the sweeper removed from storage
//	outpost_purge_eviction_delay_seconds     from a ban to the sweeper's removal of an object it matched
//	outpost_purge_walks_total{result}        walks of the tier, complete or failed
//	outpost_purge_retired_bans_total         bans retired
type metrics struct {
	bans    *prometheus.CounterVec
	active  prometheus.GaugeFunc
	swept   prometheus.Counter
	delay   prometheus.Histogram
	walks   *prometheus.CounterVec
	retired prometheus.Counter
}

// newMetrics makes the collectors. active reports the number of active
// bans.
func newMetrics(active func() float64) *metrics {
	return &metrics{
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_purge_bans_total",
			Help: "Bans recorded, issued here or received from the fleet, by kind (url, prefix, tag, host, all) and mode (hard, soft).",
		}, []string{"kind", "mode"}),
		active: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_purge_active_bans",
			Help: "Bans not yet retired; a target with both a hard and a soft ban counts twice.",
		}, active),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_purge_swept_objects_total",
			Help: "Objects the purge sweeper removed from storage.",
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "outpost_purge_eviction_delay_seconds",
			Help:    "Time from a ban to the sweeper's removal of an object it matched (the newest such ban).",
			Buckets: prometheus.ExponentialBuckets(0.25, 4, 10),
		}),
		walks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_purge_walks_total",
			Help: "Walks of the storage tier by the purge sweeper, by result (complete, failed).",
		}, []string{"result"}),
		retired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_purge_retired_bans_total",
			Help: "Bans retired because no stored object they match predates them.",
		}),
	}
}

// register registers the collectors with reg, all or none.
func (m *metrics) register(reg prometheus.Registerer) error {
	return registerAll(reg, "Config.Registerer", m.bans, m.active, m.swept, m.delay, m.walks, m.retired)
}

// registerAll registers cs with reg, all or none; field names the
// configuration field reg came from, for the error.
func registerAll(reg prometheus.Registerer, field string, cs ...prometheus.Collector) error {
	return promreg.Register(reg, "purge: "+field, cs...)
}

// recorded counts the bans of a record just added.
func (m *metrics) recorded(r *Record) {
	mode := "hard"
	if r.Soft {
		mode = "soft"
	}
	for _, b := range r.Bans {
		m.bans.WithLabelValues(b.Kind.String(), mode).Inc()
	}
}
