package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// registerStorageGauges exposes the memory tier's usage (the disk tier
// exports its own).
func (n *node) registerStorageGauges() {
	n.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "outpost_memory_bytes", Help: "Bytes charged to the memory tier."},
			func() float64 { return float64(n.mem.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "outpost_memory_max_bytes", Help: "The memory tier's budget."},
			func() float64 { return float64(n.mem.Stats().MaxBytes) }),
	)
}
