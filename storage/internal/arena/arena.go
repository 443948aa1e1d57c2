// Package arena keeps byte bodies in fixed-size pages that the Go garbage
// collector neither scans nor counts towards its heap goal: an anonymous
// memory mapping (Mmap), or large heap slabs allocated once and never freed
// (Heap). The memory tier stores its bodies here, so that a cache of N
// bytes costs about N bytes of memory, where bodies as ordinary slices
// would let a collecting heap grow to twice what it holds.
//
// The arena hands out pages, PageSize bytes each, in extents (runs of
// adjacent pages). Pages are allocated first-fit from the lowest address, so
// the memory touched stays as compact as what is in use, and a mapping's
// resident size follows the peak use rather than the capacity. An object's
// pages need not be adjacent; eviction in roughly insertion order (as
// S3-FIFO does) frees runs that the next objects reuse whole.
//
// The arena does not know who reads a page: its owner frees an extent only
// once no reader can touch it (the memory tier counts references).
package arena

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// PageSize is the allocation unit: the operating system's usual page, so a
// mapping's page becomes resident exactly when the arena hands it out.
const PageSize = 4096

// slabPages is how many pages one slab holds (2 MiB). Extents never cross a
// slab boundary, so heap slabs need not be adjacent.
const slabPages = 512

// Backing is where the arena's pages live.
type Backing int

const (
	// Mmap keeps pages in one anonymous private mapping reserved at New,
	// outside the Go heap: the collector neither scans nor counts it, and a
	// page costs memory only once written. On systems without mmap it
	// falls back to Heap.
	Mmap Backing = iota
	// Heap keeps pages in 2 MiB byte slices on the Go heap, allocated as
	// first needed and kept until Close. They contain no pointers, so the
	// collector does not scan them, but they count towards its heap goal.
	Heap
)

func (b Backing) String() string {
	switch b {
	case Mmap:
		return "mmap"
	case Heap:
		return "heap"
	}
	return fmt.Sprintf("Backing(%d)", int(b))
}

// Extent is a run of N adjacent pages starting at page Page.
type Extent struct {
	Page, N uint32
}

// Arena is a fixed number of pages. It is safe for concurrent use.
type Arena struct {
	backing Backing
	pages   int // capacity in pages, a multiple of slabPages

	mu      sync.Mutex
	bitmap  []uint64 // bit set: page in use
	low     int      // no word below low has a free bit
	used    int      // pages in use
	peak    int      // highest page index handed out, plus one
	slabs   [][]byte // per slab: its memory (nil until first used, Heap)
	mapping []byte   // Mmap: the whole reservation
	closed  bool     // Close was called; unmapped once used is 0
}

// ErrFull reports an allocation the free pages cannot satisfy.
var ErrFull = errors.New("arena: full")

// New returns an arena of at least capacity bytes (rounded up to 2 MiB).
// With Mmap it reserves the address space at once; memory is used only as
// pages are written.
func New(capacity int64, backing Backing) (*Arena, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("arena: capacity %d is not positive", capacity)
	}
	slabs := (capacity + slabPages*PageSize - 1) / (slabPages * PageSize)
	if slabs*slabPages > 1<<31 {
		return nil, fmt.Errorf("arena: capacity %d is too large", capacity)
	}
	a := &Arena{
		backing: backing,
		pages:   int(slabs) * slabPages,
		slabs:   make([][]byte, slabs),
	}
	a.bitmap = make([]uint64, a.pages/64)
	if backing == Mmap {
		m, err := mapAnon(a.pages * PageSize)
		if errors.Is(err, errNoMmap) {
			a.backing = Heap
			return a, nil
		}
		if err != nil {
			return nil, fmt.Errorf("arena: map %d bytes: %w", a.pages*PageSize, err)
		}
		a.mapping = m
		for i := range a.slabs {
			a.slabs[i] = m[i*slabPages*PageSize : (i+1)*slabPages*PageSize : (i+1)*slabPages*PageSize]
		}
	}
	return a, nil
}

// Backing returns where the pages live (Heap when Mmap was asked for but is
// not available).
func (a *Arena) Backing() Backing { return a.backing }

// Capacity returns the arena's size in bytes.
func (a *Arena) Capacity() int64 { return int64(a.pages) * PageSize }

// Pages returns how many pages hold n bytes.
func Pages(n int64) int { return int((n + PageSize - 1) / PageSize) }

// Alloc appends to dst extents of n pages in all, and returns it; it takes
// all n pages or none, and fails with ErrFull when fewer are free. It
// prefers low pages, and adjacent ones.
func (a *Arena) Alloc(n int, dst []Extent) ([]Extent, error) {
	if n <= 0 {
		return dst, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return dst, errors.New("arena: closed")
	}
	if a.pages-a.used < n {
		return dst, ErrFull
	}
	first := len(dst)
	need := n
	for w := a.low; need > 0 && w < len(a.bitmap); w++ {
		for need > 0 && a.bitmap[w] != ^uint64(0) {
			word := a.bitmap[w]
			b := bits.TrailingZeros64(^word)
			run := 64 - b // free bits from b up
			if rest := word >> b; rest != 0 {
				run = bits.TrailingZeros64(rest)
			}
			start := w*64 + b
			run = min(run, need, slabPages-start%slabPages)
			a.take(w, b, run)
			if s := start / slabPages; a.slabs[s] == nil {
				a.slabs[s] = make([]byte, slabPages*PageSize) // Heap: first use of the slab
			}
			need -= run
			if last := len(dst) - 1; last >= first && int(dst[last].Page+dst[last].N) == start && start%slabPages != 0 {
				dst[last].N += uint32(run)
			} else {
				dst = append(dst, Extent{Page: uint32(start), N: uint32(run)})
			}
			a.peak = max(a.peak, start+run)
		}
	}
	for a.low < len(a.bitmap) && a.bitmap[a.low] == ^uint64(0) {
		a.low++
	}
	a.used += n
	return dst, nil
}

// take marks run bits from bit b of word w in use.
func (a *Arena) take(w, b, run int) {
	mask := ^uint64(0)
	if run < 64 {
		mask = (1<<run - 1)
	}
	a.bitmap[w] |= mask << b
}

// Free returns the pages of exts to the arena. The caller must make sure
// no one reads them afterwards.
func (a *Arena) Free(exts []Extent) {
	if len(exts) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.release(exts)
	if a.closed && a.used == 0 {
		a.unmap()
	}
}

func (a *Arena) release(exts []Extent) {
	for _, e := range exts {
		a.clear(int(e.Page), int(e.N))
		a.used -= int(e.N)
	}
}

// clear marks n pages from page start free.
func (a *Arena) clear(start, n int) {
	for n > 0 {
		w, b := start/64, start%64
		k := min(n, 64-b)
		mask := ^uint64(0)
		if k < 64 {
			mask = 1<<k - 1
		}
		if a.bitmap[w]&(mask<<b) != mask<<b {
			panic(fmt.Sprintf("arena: page %d freed twice", start))
		}
		a.bitmap[w] &^= mask << b
		a.low = min(a.low, w)
		start += k
		n -= k
	}
}

// Bytes returns the memory of extent e, of length e.N × PageSize. It is
// valid until the extent is freed.
func (a *Arena) Bytes(e Extent) []byte {
	s := int(e.Page) / slabPages
	off := int(e.Page) % slabPages * PageSize
	return a.slabs[s][off : off+int(e.N)*PageSize : off+int(e.N)*PageSize]
}

// Stats is a snapshot of an arena's use, in bytes.
type Stats struct {
	// Used is the memory of the pages in use.
	Used int64
	// Resident bounds the memory the arena costs the process: for Mmap the
	// pages up to the highest one ever handed out (a page written once
	// stays resident), for Heap the slabs allocated.
	Resident int64
	// Capacity is the arena's size.
	Capacity int64
}

// Stats returns the arena's use.
func (a *Arena) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Stats{Used: int64(a.used) * PageSize, Capacity: a.Capacity()}
	if a.backing == Mmap {
		st.Resident = int64(a.peak) * PageSize
	} else {
		for _, s := range a.slabs {
			if s != nil {
				st.Resident += int64(len(s))
			}
		}
	}
	return st
}

// Close releases the arena: at once if no page is in use, else when the
// last one is freed (a reader may still hold one). Alloc fails afterwards.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.used == 0 {
		return a.unmap()
	}
	return nil
}

func (a *Arena) unmap() error {
	m := a.mapping
	a.mapping = nil
	clear(a.slabs)
	if m == nil {
		return nil
	}
	return unmapAnon(m)
}
