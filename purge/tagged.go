package purge

import (
	"sync"
	"sync/atomic"
)

// taggedURLs remembers, for the URLs of stored objects a tag ban matched,
// the time of the newest such ban: what Newest reports for a URL once its
// object is gone and its tags with it, so that every kind of purge gives
// the refetch a purge time to send to the tier above. It holds at most
// size URLs; beyond that the one noted first is forgotten. Reads take no
// lock; noting a URL for the first time takes mu.
type taggedURLs struct {
	size int
	n    atomic.Int64 // URLs held: Newest's fast path when there are none
	m    sync.Map     // URL → *atomic.Int64, the ban's time in Unix nanoseconds

	mu    sync.Mutex
	order []string // the URLs held, in a ring, oldest at next once full
	next  int
}

func newTaggedURLs(size int) *taggedURLs {
	return &taggedURLs{size: size, order: make([]string, 0, min(size, 1024))}
}

// note records that a tag ban issued at at (Unix nanoseconds) matched an
// object of url.
func (tu *taggedURLs) note(url string, at int64) {
	if url == "" || tu.size <= 0 {
		return
	}
	if v, ok := tu.m.Load(url); ok {
		raise(v.(*atomic.Int64), at)
		return
	}
	tu.mu.Lock()
	defer tu.mu.Unlock()
	if v, ok := tu.m.Load(url); ok { // noted meanwhile
		raise(v.(*atomic.Int64), at)
		return
	}
	t := new(atomic.Int64)
	t.Store(at)
	tu.m.Store(url, t)
	if len(tu.order) < tu.size {
		tu.order = append(tu.order, url)
		tu.n.Add(1)
		return
	}
	tu.m.Delete(tu.order[tu.next])
	tu.order[tu.next] = url
	tu.next = (tu.next + 1) % tu.size
}

// newest returns the time noted for url, or zero.
func (tu *taggedURLs) newest(url string) int64 {
	if tu.n.Load() == 0 {
		return 0
	}
	if v, ok := tu.m.Load(url); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// clear forgets every URL: no tag ban is left that they could report.
func (tu *taggedURLs) clear() {
	tu.mu.Lock()
	defer tu.mu.Unlock()
	for _, u := range tu.order {
		tu.m.Delete(u)
	}
	tu.order, tu.next = tu.order[:0], 0
	tu.n.Store(0)
}

// raise sets v to at if at is later.
func raise(v *atomic.Int64, at int64) {
	for {
		old := v.Load()
		if at <= old || v.CompareAndSwap(old, at) {
			return
		}
	}
}
