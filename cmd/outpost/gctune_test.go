package main

import (
	"context"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	budget := int64(2*256*mib + 64*mib) // --memory 256MiB
	tests := []struct {
		live int64
		want int
	}{
		{0, 1000},
		{20 * mib, 1000},      // a small live heap: the cap
		{96 * mib, 500},       // heap goal 576 MiB, the budget
		{288 * mib, 100},      // half the budget: the default
		{400 * mib, 100},      // above: never below the default
		{budget / 11, 1000},   // the cap's edge
		{budget * 2 / 5, 150}, // goal = live × 2.5 = budget
	}
	for _, tt := range tests {
		got := gcPercentFor(budget, tt.live)
		assert.Equal(t, tt.want, got, "live %d MiB", tt.live/mib)
		goal := tt.live * int64(100+got) / 100
		assert.True(t, goal <= max(budget, 2*tt.live), "heap goal %d MiB exceeds max(budget, 2×live)", goal/mib)
	}
}

// TestGCTunerRestoresDefaults: the tuner raises GOGC while it runs and
// puts the default back when it stops; with GOGC in the environment it
// does nothing.
func TestGCTunerRestoresDefaults(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := startGCTuner(ctx, 1<<30) // a budget far above this test's heap
	assert.Greater(t, debug.SetGCPercent(-1), 100, "raised while running")
	debug.SetGCPercent(1000)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("tuner did not stop")
	}
	assert.Equal(t, 100, debug.SetGCPercent(100), "restored")

	t.Setenv("GOGC", "200")
	before := debug.SetGCPercent(100)
	<-startGCTuner(context.Background(), 1<<30)
	assert.Equal(t, 100, debug.SetGCPercent(before), "left alone with GOGC set")
}
