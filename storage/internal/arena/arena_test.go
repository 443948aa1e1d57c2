package arena

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var backings = []Backing{Mmap, Heap}

func pagesOf(exts []Extent) int {
	n := 0
	for _, e := range exts {
		n += int(e.N)
	}
	return n
}

func TestAllocPrefersLowAdjacentPages(t *testing.T) {
	for _, b := range backings {
		t.Run(b.String(), func(t *testing.T) {
			a, err := New(4<<20, b)
			require.NoError(t, err)
			defer a.Close()
			x, err := a.Alloc(3, nil)
			require.NoError(t, err)
			assert.Equal(t, []Extent{{0, 3}}, x)
			y, err := a.Alloc(100, nil)
			require.NoError(t, err)
			assert.Equal(t, []Extent{{3, 100}}, y, "one extent across bitmap words")
			a.Free(x)
			z, err := a.Alloc(5, nil)
			require.NoError(t, err)
			assert.Equal(t, []Extent{{0, 3}, {103, 2}}, z, "the hole first, then the next free pages")
			st := a.Stats()
			assert.Equal(t, int64(105*PageSize), st.Used)
		})
	}
}

func TestExtentsStayInOneSlab(t *testing.T) {
	a, err := New(4<<20, Heap)
	require.NoError(t, err)
	defer a.Close()
	x, err := a.Alloc(slabPages+10, nil)
	require.NoError(t, err)
	assert.Equal(t, []Extent{{0, slabPages}, {slabPages, 10}}, x)
	for _, e := range x {
		assert.Len(t, a.Bytes(e), int(e.N)*PageSize)
	}
}

func TestFullAllOrNothing(t *testing.T) {
	a, err := New(2<<20, Heap)
	require.NoError(t, err)
	defer a.Close()
	x, err := a.Alloc(slabPages-1, nil)
	require.NoError(t, err)
	_, err = a.Alloc(2, nil)
	require.ErrorIs(t, err, ErrFull)
	assert.Equal(t, int64(slabPages-1)*PageSize, a.Stats().Used, "a failed Alloc takes nothing")
	a.Free(x)
	assert.Zero(t, a.Stats().Used)
	assert.Panics(t, func() { a.Free(x) }, "double free")
}

// TestChurnNeverSharesAPage allocates and frees at random, writing each
// allocation's pages with its own byte and checking them before the free:
// no two live allocations ever share a page.
func TestChurnNeverSharesAPage(t *testing.T) {
	for _, b := range backings {
		t.Run(b.String(), func(t *testing.T) {
			a, err := New(8<<20, b)
			require.NoError(t, err)
			defer a.Close()
			r := rand.New(rand.NewPCG(1, 2))
			type alloc struct {
				exts []Extent
				tag  byte
			}
			var live []alloc
			for step := range 5000 {
				if len(live) > 0 && (r.IntN(2) == 0 || a.Stats().Used > 6<<20) {
					i := r.IntN(len(live))
					for _, e := range live[i].exts {
						for _, c := range a.Bytes(e) {
							if c != live[i].tag {
								t.Fatalf("step %d: page of allocation %d overwritten", step, live[i].tag)
							}
						}
					}
					a.Free(live[i].exts)
					live = append(live[:i], live[i+1:]...)
					continue
				}
				n := 1 + r.IntN(40)
				exts, err := a.Alloc(n, nil)
				require.NoError(t, err)
				require.Equal(t, n, pagesOf(exts))
				tag := byte(step)
				for _, e := range exts {
					buf := a.Bytes(e)
					for i := range buf {
						buf[i] = tag
					}
				}
				live = append(live, alloc{exts, tag})
			}
			var n int
			for _, l := range live {
				n += pagesOf(l.exts)
			}
			assert.Equal(t, int64(n)*PageSize, a.Stats().Used)
			assert.LessOrEqual(t, a.Stats().Resident, int64(8<<20))
		})
	}
}

func TestCloseWaitsForLastFree(t *testing.T) {
	a, err := New(2<<20, Mmap)
	require.NoError(t, err)
	x, err := a.Alloc(1, nil)
	require.NoError(t, err)
	a.Bytes(x[0])[0] = 1
	require.NoError(t, a.Close())
	assert.Equal(t, byte(1), a.Bytes(x[0])[0], "still mapped while a page is in use")
	_, err = a.Alloc(1, nil)
	assert.Error(t, err, "Alloc after Close")
	a.Free(x)
	assert.Nil(t, a.mapping, "unmapped after the last free")
}

func BenchmarkAllocFree(b *testing.B) {
	for _, full := range []int{0, 90} {
		b.Run(map[int]string{0: "empty", 90: "90%full"}[full], func(b *testing.B) {
			b.ReportAllocs()
			a, err := New(256<<20, Mmap)
			require.NoError(b, err)
			defer a.Close()
			r := rand.New(rand.NewPCG(1, 2))
			var ring [][]Extent
			for a.Stats().Used < a.Capacity()*int64(full)/100 {
				x, _ := a.Alloc(1+r.IntN(30), nil)
				ring = append(ring, x)
			}
			i := 0
			for b.Loop() {
				x, err := a.Alloc(1+r.IntN(30), nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(ring) > 0 {
					a.Free(ring[i%len(ring)])
					ring[i%len(ring)] = x
					i++
				} else {
					a.Free(x)
				}
			}
		})
	}
}
