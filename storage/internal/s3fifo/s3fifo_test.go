package s3fifo

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// check verifies the policy's internal invariants: list links, byte and
// entry counts, and the index.
func check(t *testing.T, p *Policy[int, int]) {
	t.Helper()
	var used int64
	for _, l := range []*list{&p.small, &p.main} {
		n, bytes := 0, int64(0)
		prev := none
		for i := l.head; i != none; i = p.nodes[i].next {
			require.Equal(t, prev, p.nodes[i].prev, "back link of node %d", i)
			require.Equal(t, i, p.index[p.nodes[i].key], "index of key %d", p.nodes[i].key)
			n++
			bytes += p.nodes[i].charge
			prev = i
		}
		require.Equal(t, prev, l.tail, "tail")
		require.Equal(t, n, l.n, "entry count")
		require.Equal(t, bytes, l.bytes, "byte count")
		used += bytes
	}
	require.Equal(t, used, p.used, "used bytes")
	require.Equal(t, p.Len(), len(p.index), "index size")
}

func TestBudgetKept(t *testing.T) {
	tests := []struct {
		name       string
		giveCap    int64
		giveMaxObj int64
	}{
		{"small objects", 10_000, 100},
		{"mixed sizes", 100_000, 20_000},
		{"objects near capacity", 1000, 900},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New[int, int](tt.giveCap)
			r := rand.New(rand.NewPCG(1, 2))
			present := map[int]bool{}
			var evicted []int
			for i := range 5000 {
				k := r.IntN(2000)
				switch r.IntN(10) {
				case 0:
					p.Remove(k)
					delete(present, k)
				case 1, 2, 3:
					_, ok := p.Get(k)
					assert.Equal(t, present[k], ok, "Get(%d) at step %d", k, i)
				default:
					evicted = p.Add(k, k, 1+r.Int64N(tt.giveMaxObj), evicted[:0])
					present[k] = true
					for _, e := range evicted {
						delete(present, e)
					}
				}
				require.LessOrEqual(t, p.Bytes(), tt.giveCap, "bytes held after step %d", i)
			}
			check(t, p)
			assert.Equal(t, len(present), p.Len())
		})
	}
}

// TestScanResistance pins the property the disk tier picked S3-FIFO for: a
// scan of objects each read once does not flush a working set that is hit.
func TestScanResistance(t *testing.T) {
	const capacity, size = 1000 * 100, 100
	p := New[int, int](capacity)
	working := make([]int, 300) // 30% of the capacity
	for i := range working {
		working[i] = i
		p.Add(i, i, size, nil)
	}
	for range 3 {
		for _, k := range working {
			p.Get(k)
		}
	}
	var lost []int
	for s := range 20 * capacity / size { // a scan of 20 times the capacity
		p.Add(1_000_000+s, 0, size, nil)
		if s%500 == 0 { // the working set stays in use during the scan
			for _, k := range working {
				p.Get(k)
			}
		}
	}
	for _, k := range working {
		if _, ok := p.Peek(k); !ok {
			lost = append(lost, k)
		}
	}
	assert.Empty(t, lost, "working-set keys evicted by a one-hit scan")
	check(t, p)
}

func TestGhostReadmission(t *testing.T) {
	p := New[int, int](1000)
	p.Add(1, 1, 100, nil)
	var ev []int
	for k := 2; !contains(ev, 1); k++ {
		ev = p.Add(k, k, 100, ev)
	}
	_, ok := p.Peek(1)
	require.False(t, ok, "key 1 was evicted")
	// Back from the ghost queue, key 1 enters the main queue, and a scan
	// through the small queue no longer reaches it.
	p.Add(1, 1, 100, nil)
	for k := 1000; k < 1100; k++ {
		p.Add(k, k, 100, nil)
		_, ok := p.Peek(1)
		require.True(t, ok, "readmitted key evicted by new key %d", k)
		if p.main.n > 0 && p.small.bytes <= p.capacity/10 {
			break
		}
	}
	check(t, p)
}

func TestReplaceInheritsPlace(t *testing.T) {
	p := New[string, int](1000)
	p.Add("a", 1, 100, nil)
	p.Get("a")
	p.Add("a", 2, 300, nil)
	v, ok := p.Peek("a")
	require.True(t, ok)
	assert.Equal(t, 2, v)
	assert.Equal(t, int64(300), p.Bytes())
	assert.Equal(t, 1, p.Len())
	assert.Equal(t, uint8(1), p.nodes[p.index["a"]].freq, "frequency after replacement")
}

func TestRemoveDoesNotMakeGhost(t *testing.T) {
	p := New[string, int](1000)
	p.Add("a", 1, 100, nil)
	assert.True(t, p.Remove("a"))
	assert.False(t, p.Remove("a"))
	p.Add("a", 1, 100, nil)
	assert.Equal(t, inSmall, p.nodes[p.index["a"]].where, "re-added after Remove")
	assert.Equal(t, int64(100), p.Bytes())
}

func TestSetCapacityEvicts(t *testing.T) {
	p := New[int, int](1000)
	for k := range 10 {
		p.Add(k, k, 100, nil)
	}
	ev := p.SetCapacity(450, nil)
	assert.Len(t, ev, 6)
	assert.LessOrEqual(t, p.Bytes(), int64(450))
	assert.Equal(t, int64(450), p.Capacity())
}

func TestRestoreKeepsOrder(t *testing.T) {
	p := New[int, int](500)
	for k := range 5 {
		p.Restore(k, k, 100, nil)
	}
	p.Get(0)
	ev := p.Add(100, 100, 200, nil)
	assert.Equal(t, []int{1, 2}, ev, "restored entries leave oldest first, the hit one survives")
	v, ok := p.Peek(0)
	assert.True(t, ok)
	assert.Equal(t, 0, v)
	check(t, p)
}

func TestSetAndKeys(t *testing.T) {
	p := New[int, string](1000)
	p.Add(1, "a", 10, nil)
	assert.True(t, p.Set(1, "b"))
	assert.False(t, p.Set(2, "c"))
	v, _ := p.Peek(1)
	assert.Equal(t, "b", v)
	assert.Equal(t, []int{1}, p.Keys(nil))
}

func contains(s []int, k int) bool {
	for _, v := range s {
		if v == k {
			return true
		}
	}
	return false
}

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{1000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			p := New[[16]byte, uint64](int64(n) * 100)
			var k [16]byte
			var ev [][16]byte
			i := uint64(0)
			for b.Loop() {
				i++
				k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				ev = p.Add(k, i, 100, ev[:0])
			}
		})
	}
}

func TestFreqSaturates(t *testing.T) {
	p := New[int, int](1000)
	assert.Equal(t, -1, p.Freq(1), "absent key")
	p.Add(1, 1, 10, nil)
	for hits := range 5 {
		if hits > 0 {
			p.Get(1)
		}
		assert.Equal(t, min(hits, maxFreq), p.Freq(1), "after %d hits", hits)
	}
}

func TestRangeOldestFirst(t *testing.T) {
	p := New[int, int](10_000)
	for k := range 3 {
		p.Restore(k, k, 10, nil)
	}
	p.Add(10, 10, 10, nil)
	p.Add(11, 11, 10, nil)
	var got []int
	p.Range(func(k, v int, charge int64) bool {
		got = append(got, k)
		return k != 10
	})
	assert.Equal(t, []int{0, 1, 2, 10}, got)
}

func TestOnEvictSeesEvictionsOnly(t *testing.T) {
	var got []int
	p := NewWithConfig(Config[int, int]{Capacity: 300, OnEvict: func(k, v int) {
		assert.Equal(t, k*10, v, "value of key %d", k)
		got = append(got, k)
	}})
	p.Add(1, 10, 100, nil)
	p.Add(2, 20, 100, nil)
	p.Remove(2)
	p.Add(1, 10, 100, nil) // replaced, not evicted
	assert.Empty(t, got)
	var ev []int
	for k := 3; k < 8; k++ {
		ev = p.Add(k, k*10, 100, ev)
	}
	assert.Equal(t, ev, got, "OnEvict and the evicted keys agree")
	assert.NotEmpty(t, got)
}

// TestAdaptiveSmallQueueFollowsTheWorkload: the small queue's share grows
// when keys it dropped come back soon after (a shift of popularity: every
// newcomer is requested twice, a little apart) and shrinks when the main
// queue's evictions come back (a steady working set a bit larger than the
// main queue).
func TestAdaptiveSmallQueueFollowsTheWorkload(t *testing.T) {
	const capacity, size = 100 * 100, 100
	t.Run("newcomers come back", func(t *testing.T) {
		p := NewWithConfig(Config[int, int]{Capacity: capacity, Adaptive: true})
		for k := range 5000 {
			p.Add(k, k, size, nil)
			if k >= 20 {
				if _, ok := p.Get(k - 20); !ok { // asked again 20 keys later
					p.Add(k-20, k-20, size, nil)
				}
			}
		}
		assert.Greater(t, p.SmallTarget(), int64(capacity/4), "small queue's share")
		check(t, p)
	})
	t.Run("working set comes back", func(t *testing.T) {
		p := NewWithConfig(Config[int, int]{Capacity: capacity, Adaptive: true})
		r := rand.New(rand.NewPCG(3, 4))
		for range 50_000 {
			k := r.IntN(110) // 110 objects, room for 100
			if _, ok := p.Get(k); !ok {
				p.Add(k, k, size, nil)
			}
		}
		assert.Less(t, p.SmallTarget(), int64(capacity/10), "small queue's share")
		check(t, p)
	})
	t.Run("fixed without Adaptive", func(t *testing.T) {
		p := New[int, int](capacity)
		for k := range 5000 {
			p.Add(k, k, size, nil)
			if k >= 20 {
				if _, ok := p.Get(k - 20); !ok {
					p.Add(k-20, k-20, size, nil)
				}
			}
		}
		assert.Equal(t, int64(capacity/10), p.SmallTarget())
	})
}

func TestMaxFreq(t *testing.T) {
	p := NewWithConfig(Config[int, int]{Capacity: 1000, MaxFreq: 1})
	p.Add(1, 1, 10, nil)
	p.Get(1)
	p.Get(1)
	assert.Equal(t, 1, p.Freq(1))
}
