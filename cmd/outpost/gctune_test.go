package main

import (
	"context"
	"math"
	"runtime/debug"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	limit := int64(576 * mib)
	tests := []struct {
		live int64
		want int
	}{
		{0, 1000},
		{20 * mib, 1000},     // a small live heap: the cap
		{96 * mib, 500},      // heap goal 576 MiB, the limit
		{288 * mib, 100},     // half the limit: the default
		{400 * mib, 100},     // above: never below the default
		{limit / 11, 1000},   // the cap's edge
		{limit * 2 / 5, 150}, // goal = live × 2.5 = limit
	}
	for _, tt := range tests {
		got := gcPercentFor(limit, tt.live)
		assert.Equal(t, tt.want, got, "live %d MiB", tt.live/mib)
		goal := tt.live * int64(100+got) / 100
		assert.True(t, goal <= max(limit, 2*tt.live), "heap goal %d MiB exceeds max(limit, 2×live)", goal/mib)
	}
}

// TestHeapLimitKeepsTheRSSTarget: arena, runtime limit and what lies
// outside the runtime add up to 1.15 × budget + 64 MiB, for budgets from
// 64 MiB to 16 GiB and either arena.
func TestHeapLimitKeepsTheRSSTarget(t *testing.T) {
	for _, budget := range []int64{64 << 20, 256 << 20, 1 << 30, 8 << 30, 16 << 30} {
		for _, arena := range []storage.Arena{storage.ArenaMmap, storage.ArenaHeap} {
			mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: budget, Arena: arena})
			if err != nil {
				t.Fatal(err)
			}
			ms := mem.Stats()
			mem.Close()
			limit := heapLimit(ms)
			resident := limit + outsideRuntime
			if ms.Arena == "mmap" {
				resident += ms.ArenaCapacity // every page of the arena touched
			} else {
				assert.Greater(t, limit, ms.ArenaCapacity, "budget %d MiB: the limit holds the heap arena", budget>>20)
			}
			assert.LessOrEqual(t, resident, budget*115/100+64<<20, "budget %d MiB, %s arena", budget>>20, ms.Arena)
		}
	}
}

// TestGCTunerRestoresDefaults: the tuner sets a memory limit and raises
// GOGC while it runs, and puts the defaults back when it stops; with GOGC
// in the environment it does nothing.
func TestGCTunerRestoresDefaults(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	ms := storage.MemoryStats{MaxBytes: 1 << 30, Arena: "heap"} // a limit far above this test's heap
	done := startGCTuner(ctx, ms)
	assert.Greater(t, debug.SetGCPercent(-1), 100, "raised while running")
	debug.SetGCPercent(1000)
	assert.Equal(t, heapLimit(ms), debug.SetMemoryLimit(-1), "memory limit while running")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("tuner did not stop")
	}
	assert.Equal(t, 100, debug.SetGCPercent(100), "restored")
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "limit restored")

	t.Setenv("GOGC", "200")
	before := debug.SetGCPercent(100)
	<-startGCTuner(context.Background(), ms)
	assert.Equal(t, 100, debug.SetGCPercent(before), "left alone with GOGC set")
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "no limit with GOGC set")
}
