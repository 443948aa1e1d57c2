package main

import (
	"bytes"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// registerStorageGauges exposes the memory tier's usage beside what the
// process really holds (the disk tier exports its own): the budget, what
// is charged against it, the arena's pages, the Go runtime's memory and its
// limit, and the resident set with the target it should stay under.
func (n *node) registerStorageGauges() {
	gauge := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	n.reg.MustRegister(
		gauge("outpost_memory_max_bytes", "The memory tier's budget (--memory).",
			func() float64 { return float64(n.mem.Stats().MaxBytes) }),
		gauge("outpost_memory_bytes", "Bytes charged to the memory tier: body pages, metadata and index entries of the objects held.",
			func() float64 { return float64(n.mem.Stats().Bytes) }),
		gauge("outpost_memory_objects", "Objects held by the memory tier.",
			func() float64 { return float64(n.mem.Stats().Objects) }),
		gauge("outpost_memory_small_queue_bytes", "The share of the memory budget new objects enter (S3-FIFO small queue, learnt).",
			func() float64 { return float64(n.mem.Stats().SmallQueueBytes) }),
		gauge("outpost_memory_arena_used_bytes", "Arena pages in use: bodies held, being written, or evicted but still being read.",
			func() float64 { return float64(n.mem.Stats().ArenaUsed) }),
		gauge("outpost_memory_arena_resident_bytes", "Memory the arena holding bodies costs the process (pages touched, or heap slabs).",
			func() float64 { return float64(n.mem.Stats().ArenaResident) }),
		gauge("outpost_memory_runtime_bytes", "Memory the Go runtime holds from the system (heap, stacks, metadata), less what it released.",
			runtimeBytes),
		gauge("outpost_memory_runtime_limit_bytes", "The Go runtime's soft memory limit (derived from the budget unless GOMEMLIMIT or GOGC is set).",
			func() float64 { return float64(debug.SetMemoryLimit(-1)) }),
		gauge("outpost_memory_rss_target_bytes", "What the process aims to stay resident within: 1.15 × the memory budget + 64 MiB.",
			func() float64 { return float64(rssTarget(n.mem.Stats().MaxBytes)) }),
	)
	if residentBytes() > 0 {
		n.reg.MustRegister(gauge("outpost_memory_rss_bytes", "The process's resident set size, read from /proc/self/statm.",
			func() float64 { return float64(residentBytes()) }))
	}
}

// runtimeBytes is the memory the Go runtime has mapped and not returned to
// the system.
func runtimeBytes() float64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// residentBytes is the process's resident set size, or 0 where
// /proc/self/statm does not exist.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
