package storage

import (
	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// Operations named in outpost_disk_errors_total, and passed to the fault
// hook tests install.
const (
	opCreate   = "create"   // creating a temporary file for Put
	opWrite    = "write"    // writing a body
	opCommit   = "commit"   // writing the header and renaming into place
	opRead     = "read"     // opening and reading an object
	opUpdate   = "update"   // rewriting a header
	opDelete   = "delete"   // removing a file
	opSnapshot = "snapshot" // writing the index snapshot
)

// Reasons named in outpost_disk_corrupt_total.
const (
	corruptHeader = "header" // the header does not verify
	corruptSize   = "size"   // the file length disagrees with the header
	corruptBody   = "body"   // a body chunk or the chunk table does not verify
)

// diskMetrics are the disk tier's Prometheus collectors. They exist even
// when no Registerer is configured, unregistered, so the code that counts
// never checks.
type diskMetrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	errors      *prometheus.CounterVec
	corrupt     *prometheus.CounterVec
	evictions   prometheus.Counter
	loadSeconds prometheus.Gauge
}

func newDiskMetrics(reg prometheus.Registerer, d *Disk) (*diskMetrics, error) {
	m := &diskMetrics{
		reg: reg,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_disk_errors_total",
			Help: "I/O errors of the disk tier, by operation (create, write, commit, read, update, delete, snapshot).",
		}, []string{"op"}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_disk_corrupt_total",
			Help: "Objects dropped from the disk tier because they did not verify, by what failed (header, size, body).",
		}, []string{"what"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_disk_evictions_total",
			Help: "Objects evicted from the disk tier to keep its byte budget.",
		}),
		loadSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outpost_disk_index_load_seconds",
			Help: "How long loading the disk tier's index took at start; zero while loading.",
		}),
	}
	for _, op := range []string{opCreate, opWrite, opCommit, opRead, opUpdate, opDelete, opSnapshot} {
		m.errors.WithLabelValues(op)
	}
	for _, what := range []string{corruptHeader, corruptSize, corruptBody} {
		m.corrupt.WithLabelValues(what)
	}
	m.collectors = []prometheus.Collector{
		m.errors, m.corrupt, m.evictions, m.loadSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_disk_bytes",
			Help: "Bytes the disk tier's objects take, in file-system blocks.",
		}, func() float64 { return float64(d.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_disk_max_bytes",
			Help: "The disk tier's byte budget.",
		}, func() float64 { return float64(d.maxBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_disk_objects",
			Help: "Objects in the disk tier's index.",
		}, func() float64 { return float64(d.Stats().Objects) }),
	}
	if err := promreg.Register(reg, "disk tier", m.collectors...); err != nil {
		return nil, err
	}
	return m, nil
}

// unregister removes the collectors from the Registerer, so a new Disk can
// register its own.
func (m *diskMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
