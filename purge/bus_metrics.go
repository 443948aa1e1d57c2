package purge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// busMetrics are a Bus's Prometheus collectors:
//
//	outpost_purge_bus_published_total       purges issued here that the stream acknowledged
//	outpost_purge_bus_publish_errors_total  publishes that failed (no connection, no acknowledgement, refused)
//	outpost_purge_bus_pending               purges queued to be published again
//	outpost_purge_bus_dropped_total         purges that will not reach the fleet (queue full, or queued at Close)
//	outpost_purge_bus_applied_total{result} purges received: applied, duplicate or invalid
//	outpost_purge_bus_connected             1 while connected to NATS
//	outpost_purge_bus_ready                 1 once caught up (Bus.Ready)
type busMetrics struct {
	published     prometheus.Counter
	publishErrors prometheus.Counter
	pending       prometheus.GaugeFunc
	dropped       prometheus.Counter
	applied       *prometheus.CounterVec
	connected     prometheus.Gauge
	ready         prometheus.GaugeFunc
}

// newBusMetrics makes the collectors. pending reports the purges queued,
// ready whether the Bus has caught up.
func newBusMetrics(pending func() int, ready func() bool) *busMetrics {
	m := &busMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_purge_bus_published_total",
			Help: "Purges issued on this node that the purge bus's stream acknowledged, at once or after a retry.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_purge_bus_publish_errors_total",
			Help: "Attempts to publish a purge that failed: no connection to NATS, no acknowledgement in time, or refused.",
		}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_purge_bus_pending",
			Help: "Purges in force on this node, queued to be published to the fleet again.",
		}, func() float64 { return float64(pending()) }),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_purge_bus_dropped_total",
			Help: "Purges in force on this node that will not reach the fleet: the queue was full, or they were still queued at shutdown.",
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_purge_bus_applied_total",
			Help: "Purges received from the bus, by result: applied, duplicate (held already, such as this node's own) or invalid (dropped).",
		}, []string{"result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outpost_purge_bus_connected",
			Help: "1 while the purge bus is connected to NATS, else 0.",
		}),
		ready: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_purge_bus_ready",
			Help: "1 once the node has applied the purges it missed while down, else 0.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	}
	for _, r := range []string{resultApplied, resultDuplicate, resultInvalid} {
		m.applied.WithLabelValues(r)
	}
	return m
}

// register registers the collectors with reg, all or none.
func (m *busMetrics) register(reg prometheus.Registerer) error {
	return registerAll(reg, "BusConfig.Registerer", m.published, m.publishErrors, m.pending, m.dropped, m.applied, m.connected, m.ready)
}
