package storage_test

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// policyTrace is a small synthetic CDN trace: objects of 1 to 32 KiB
// requested with Zipf(0.9) popularity, a share of one-hit wonders, and,
// with shiftEvery > 0, the popular set re-drawn that often.
func policyTrace(seed uint64, requests, objects, shiftEvery int, ohw float64) (keys []int, sizes map[int]int64) {
	r := rand.New(rand.NewPCG(seed, 99))
	sizes = make(map[int]int64)
	cdf := make([]float64, objects)
	sum := 0.0
	for k := range objects {
		sum += math.Pow(float64(k+1), -0.9)
		cdf[k] = sum
		sizes[k] = 1<<10 + r.Int64N(31<<10)
	}
	perm := r.Perm(objects)
	next := objects
	for i := range requests {
		if shiftEvery > 0 && i > 0 && i%shiftEvery == 0 {
			perm = r.Perm(objects)
		}
		if r.Float64() < ohw {
			sizes[next] = 1<<10 + r.Int64N(31<<10)
			keys = append(keys, next)
			next++
			continue
		}
		u := r.Float64() * sum
		lo, hi := 0, objects-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cdf[mid] < u {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		keys = append(keys, perm[lo])
	}
	return keys, sizes
}

// lruByteHits replays keys through an LRU cache of budget bytes, charging
// each object as chargeOf says, and returns the share of bytes hit.
func lruByteHits(keys []int, sizes map[int]int64, budget int64, chargeOf func(int64) int64) float64 {
	type entry struct {
		k      int
		charge int64
	}
	order, index := list.New(), map[int]*list.Element{}
	var used, hit, total int64
	for _, k := range keys {
		total += sizes[k]
		if e, ok := index[k]; ok {
			order.MoveToFront(e)
			hit += sizes[k]
			continue
		}
		c := chargeOf(sizes[k])
		for used+c > budget {
			b := order.Back()
			order.Remove(b)
			delete(index, b.Value.(entry).k)
			used -= b.Value.(entry).charge
		}
		index[k] = order.PushFront(entry{k, c})
		used += c
	}
	return float64(hit) / float64(total)
}

// memoryByteHits replays keys through a memory tier as the edge uses it.
func memoryByteHits(t *testing.T, keys []int, sizes map[int]int64, cfg storage.MemoryConfig) float64 {
	m := newMemory(t, cfg)
	ctx := context.Background()
	body := make([]byte, 32<<10)
	var hit, total int64
	for _, k := range keys {
		key := fmt.Sprint("http://example.com/", k)
		total += sizes[k]
		if o, err := m.Get(ctx, key); err == nil {
			o.Close()
			hit += sizes[k]
			continue
		}
		w, err := m.Put(ctx, storage.Meta{Key: key, URL: key, Status: 200, Size: sizes[k]})
		require.NoError(t, err)
		_, err = w.Write(body[:sizes[k]])
		require.NoError(t, err)
		require.NoError(t, w.Commit())
		w.Close()
	}
	return float64(hit) / float64(total)
}

// TestMemoryPolicyAdapts replays small synthetic traces through the memory
// tier and an LRU cache of the same budget (charged the same per object):
// the tier must keep well ahead of LRU when popularity is steady or mixed
// with one-hit wonders (frequency matters), and keep up with it when the
// popular set moves (recency matters), which the tier's former TinyLFU
// admission did not.
func TestMemoryPolicyAdapts(t *testing.T) {
	tests := []struct {
		name       string
		budget     int64
		shiftEvery int
		ohw        float64
		wantAbove  float64 // points of byte hit ratio above LRU's, at least
	}{
		{"steady", 2 << 20, 0, 0, 3},
		{"one-hit wonders", 2 << 20, 0, 0.3, 3},
		{"popularity shift", 2 << 20, 5000, 0, 0},
		{"popularity shift, cache of a quarter of the bytes", 8 << 20, 5000, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, sizes := policyTrace(1, 40_000, 2000, tt.shiftEvery, tt.ohw)
			budget := tt.budget
			cfg := storage.MemoryConfig{MaxBytes: budget}
			got := memoryByteHits(t, keys, sizes, cfg)
			charge := func(size int64) int64 {
				return (size+4095)/4096*4096 + 1<<10 // pages and about what metadata costs here
			}
			lru := lruByteHits(keys, sizes, budget, charge)
			t.Logf("byte hit ratio: memory tier %.1f%%, LRU %.1f%%", 100*got, 100*lru)
			assert.GreaterOrEqual(t, 100*got, 100*lru+tt.wantAbove, "memory tier's byte hit ratio vs LRU's")
		})
	}
}
