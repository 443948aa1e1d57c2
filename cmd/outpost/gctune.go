package main

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// A node aims to stay resident within 1.15 × the memory tier's budget +
// 64 MiB (rssTarget): the budget itself, its bodies' last partial pages and
// the room for bodies in flight (the memory tier's arena), and the Go heap
// around it (metadata, connections, buffers, goroutines). The arena is
// outside the collector's reach (an mmap'ed region, or heap slabs that are
// never garbage), so what a collecting heap may double is only the rest.
//
// gcTuner turns that into the runtime's soft memory limit
// (debug.SetMemoryLimit): the target less the arena's capacity when it is
// mapped outside the heap (the budget plus its room for bodies in flight,
// all of which may become resident), less what the process holds outside
// the runtime (the binary's code and data) and a margin. (A limit that
// followed the arena's resident pages instead let the heap take what the
// arena had not touched yet, and a peak of the arena then found the heap
// at its largest: 1.40 × at 256 MiB under one-hit wonders, at the target.)
// Under the limit it raises GOGC while the live
// heap is small (a cold or small working set), up to 1000, so that the
// collector does not run tens of times a second for a heap far below what
// the operator accepted; it never sets GOGC below 100, so the limit, not
// GOGC, bounds the heap once it is large.
//
// It is off when the operator set GOGC or GOMEMLIMIT.
type gcTuner struct {
	limit  int64
	sample []metrics.Sample
	last   int
}

// outsideRuntime is what the process keeps resident beside the Go
// runtime's memory and the arena: mostly the binary's text and data
// (about 12 MiB measured), with room to spare.
const outsideRuntime = 20 << 20

// minHeapLimit is the least memory limit the tuner sets: below it a node
// collects without pause, whatever its budget.
const minHeapLimit = 32 << 20

// rssTarget is the resident memory a node with a memory tier of budget
// bytes aims to stay under.
func rssTarget(budget int64) int64 { return budget + budget*15/100 + 64<<20 }

// heapLimit is the runtime memory limit for a node whose memory tier
// reports ms. It leaves 1 % of the budget + 8 MiB of the target unused:
// the limit is soft, and the heap grows to it when the live heap is small.
func heapLimit(ms storage.MemoryStats) int64 {
	limit := rssTarget(ms.MaxBytes) - outsideRuntime - ms.MaxBytes/100 - 8<<20
	if ms.Arena == "mmap" {
		limit -= ms.ArenaCapacity
	}
	return max(limit, minHeapLimit)
}

// gcPercentFor is the GOGC that puts the heap goal at limit for a live
// heap of live bytes, within [100, 1000].
func gcPercentFor(limit, live int64) int {
	if live <= 0 {
		return 1000
	}
	p := (limit - live) * 100 / live
	return int(min(max(p, 100), 1000))
}

// startGCTuner sets the memory limit for a memory tier reporting ms and
// runs the tuner until ctx is done, then restores GOGC=100 and no limit.
// It returns at once when the environment sets GOGC or GOMEMLIMIT. done is
// closed when the tuner's goroutine has exited.
func startGCTuner(ctx context.Context, ms storage.MemoryStats) (done <-chan struct{}) {
	ch := make(chan struct{})
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		close(ch)
		return ch
	}
	t := &gcTuner{
		limit:  heapLimit(ms),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		last:   100,
	}
	debug.SetMemoryLimit(t.limit)
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
	if p := gcPercentFor(t.limit, live); p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
}
