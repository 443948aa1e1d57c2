package main

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go collector's default (GOGC=100) lets the heap grow to twice the
// live heap before it collects. For a cache that is the right bound once
// the memory tier is full, but while the live heap is small (a cold or
// small working set) it collects tens of times a second, which costs a
// 1 KiB hit a measurable share of its CPU. gcTuner raises GOGC so the heap
// may grow to a budget the operator already accepted by sizing the memory
// tier (2 × memory + 64 MiB, the default's own bound once the tier is
// full), and never sets it below 100: memory use is at most
// max(budget, 2 × live), the same worst case as without it. While GOGC is
// above 100 the budget is also the runtime's soft memory limit, so a live
// heap that jumps between two adjustments (a second apart) cannot take a
// high GOGC's goal with it.
//
// It is off when the operator set GOGC or GOMEMLIMIT.
type gcTuner struct {
	budget int64
	sample []metrics.Sample
	last   int
}

// gcPercentFor is the GOGC that puts the heap goal at budget for a live
// heap of live bytes, within [100, 1000].
func gcPercentFor(budget, live int64) int {
	if live <= 0 {
		return 1000
	}
	p := (budget - live) * 100 / live
	return int(min(max(p, 100), 1000))
}

// startGCTuner runs the tuner until ctx is done, then restores GOGC=100.
// It returns at once when the environment sets GOGC or GOMEMLIMIT. done is
// closed when the tuner's goroutine has exited.
func startGCTuner(ctx context.Context, memoryTier int64) (done <-chan struct{}) {
	ch := make(chan struct{})
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		close(ch)
		return ch
	}
	t := &gcTuner{
		budget: 2*memoryTier + 64<<20,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		last:   100,
	}
	t.adjust()
	go func() {
		defer close(ch)
		defer debug.SetMemoryLimit(math.MaxInt64)
		defer debug.SetGCPercent(100)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				t.adjust()
			}
		}
	}()
	return ch
}

// adjust sets GOGC from the live heap the last collection measured.
func (t *gcTuner) adjust() {
	metrics.Read(t.sample)
	live := int64(0)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = int64(t.sample[0].Value.Uint64())
	}
	p := gcPercentFor(t.budget, live)
	if p == t.last {
		return
	}
	if p > 100 {
		debug.SetMemoryLimit(t.budget)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	debug.SetGCPercent(p)
	t.last = p
}
