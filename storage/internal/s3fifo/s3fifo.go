// Package s3fifo is the S3-FIFO eviction policy (Yang et al., "FIFO queues
// are all you need for cache eviction", SOSP 2023) for entries of varying
// size, used by the disk tier to keep its byte budget.
//
// New entries enter a small FIFO queue (a tenth of the capacity). An entry
// evicted from the small queue moves to the main FIFO queue if it was hit
// while there, and is otherwise dropped and remembered in a ghost queue of
// keys only; an entry added again while its key is a ghost goes straight to
// the main queue. The main queue evicts like CLOCK: an entry at its tail with
// a non-zero frequency is reinserted at the head with the frequency lowered.
// A scan of many objects read once therefore passes through the small queue
// and never displaces the main queue's working set, where plain LRU would
// flush it.
//
// Entries live in one slice linked by int32 indices, with no pointers, so
// a million of them cost the garbage collector nothing to scan.
package s3fifo

import "slices"

// maxFreq saturates the per-entry hit counter, as in the paper (two bits).
const maxFreq = 3

// queue identifies where an entry is.
const (
	inFree uint8 = iota
	inSmall
	inMain
)

const none = int32(-1)

// Policy tracks entries of type V under keys K, each charged some bytes
// against a capacity. The zero value is not usable; call New. A Policy is
// not safe for concurrent use: its owner serializes calls.
type Policy[K comparable, V any] struct {
	capacity int64
	used     int64
	nodes    []node[K, V]
	free     int32 // head of the free list, linked through next
	index    map[K]int32
	small    list
	main     list
	ghost    ghost[K]
}

type node[K comparable, V any] struct {
	key        K
	val        V
	charge     int64
	prev, next int32
	freq       uint8
	where      uint8
}

// list is a FIFO: entries enter at head and leave at tail.
type list struct {
	head, tail int32
	bytes      int64
	n          int
}

// New returns an empty Policy holding at most capacity bytes.
func New[K comparable, V any](capacity int64) *Policy[K, V] {
	return &Policy[K, V]{
		capacity: capacity,
		free:     none,
		index:    make(map[K]int32),
		small:    list{head: none, tail: none},
		main:     list{head: none, tail: none},
		ghost:    ghost[K]{seqs: make(map[K]uint64)},
	}
}

// Reserve makes room for n more entries, so that adding a large number at
// once (restoring an index) does not grow the tables step by step.
func (p *Policy[K, V]) Reserve(n int) {
	p.nodes = slices.Grow(p.nodes, n)
	if len(p.index) == 0 {
		p.index = make(map[K]int32, n)
	}
}

// Len returns the number of entries held.
func (p *Policy[K, V]) Len() int { return p.small.n + p.main.n }

// Bytes returns the sum of the charges of the entries held.
func (p *Policy[K, V]) Bytes() int64 { return p.used }

// Capacity returns the byte budget.
func (p *Policy[K, V]) Capacity() int64 { return p.capacity }

// Get returns the value under k and counts a hit.
func (p *Policy[K, V]) Get(k K) (V, bool) {
	i, ok := p.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	n := &p.nodes[i]
	if n.freq < maxFreq {
		n.freq++
	}
	return n.val, true
}

// Peek returns the value under k without counting a hit.
func (p *Policy[K, V]) Peek(k K) (V, bool) {
	i, ok := p.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	return p.nodes[i].val, true
}

// Freq returns the hit count of k (0 to 3; it saturates, and the main
// queue lowers it as its hand passes), or -1 when k is absent.
func (p *Policy[K, V]) Freq(k K) int {
	i, ok := p.index[k]
	if !ok {
		return -1
	}
	return int(p.nodes[i].freq)
}

// Set replaces the value under k, keeping its place and frequency. It
// reports whether k was present.
func (p *Policy[K, V]) Set(k K, v V) bool {
	i, ok := p.index[k]
	if ok {
		p.nodes[i].val = v
	}
	return ok
}

// Add inserts k with value v and charge, evicting entries until the charges
// fit the capacity, and returns evicted with the keys of the evicted entries
// appended. A key already present is replaced, and the replacement inherits
// its queue and frequency; a key that is a ghost enters the main queue;
// others enter the small queue. An entry charged more than the capacity
// evicts everything, itself included.
func (p *Policy[K, V]) Add(k K, v V, charge int64, evicted []K) []K {
	where, freq := inSmall, uint8(0)
	if i, ok := p.index[k]; ok {
		where, freq = p.nodes[i].where, p.nodes[i].freq
		p.remove(i)
	} else if p.ghost.take(k) {
		where = inMain
	}
	p.insert(k, v, charge, where, freq)
	return p.evict(evicted)
}

// Restore inserts k as an entry that was resident before (an object found
// on disk at start): at the head of the main queue with no hits, so restored
// entries leave in the order restored unless hit. Like Add it evicts to fit
// and appends the evicted keys to evicted.
func (p *Policy[K, V]) Restore(k K, v V, charge int64, evicted []K) []K {
	if i, ok := p.index[k]; ok {
		p.remove(i)
	}
	p.insert(k, v, charge, inMain, 0)
	return p.evict(evicted)
}

// Remove drops k, reporting whether it was present. A removed key does not
// become a ghost: removals are deletions, not evictions.
func (p *Policy[K, V]) Remove(k K) bool {
	i, ok := p.index[k]
	if ok {
		p.remove(i)
	}
	return ok
}

// SetCapacity changes the byte budget, evicting to fit, and appends the
// evicted keys to evicted.
func (p *Policy[K, V]) SetCapacity(capacity int64, evicted []K) []K {
	p.capacity = capacity
	return p.evict(evicted)
}

// Range calls fn for every entry, oldest first: the main queue from its
// tail, then the small queue from its tail. Restoring the entries in this
// order keeps their order of eviction, bar frequencies. fn must not change
// the policy; Range stops when fn returns false.
func (p *Policy[K, V]) Range(fn func(k K, v V, charge int64) bool) {
	for _, l := range []*list{&p.main, &p.small} {
		for i := l.tail; i != none; i = p.nodes[i].prev {
			if !fn(p.nodes[i].key, p.nodes[i].val, p.nodes[i].charge) {
				return
			}
		}
	}
}

// Keys appends every key held to dst, in no particular order.
func (p *Policy[K, V]) Keys(dst []K) []K {
	for k := range p.index {
		dst = append(dst, k)
	}
	return dst
}

func (p *Policy[K, V]) insert(k K, v V, charge int64, where, freq uint8) {
	i := p.free
	if i == none {
		p.nodes = append(p.nodes, node[K, V]{})
		i = int32(len(p.nodes) - 1)
	} else {
		p.free = p.nodes[i].next
	}
	p.nodes[i] = node[K, V]{key: k, val: v, charge: charge, freq: freq, where: where, prev: none, next: none}
	p.index[k] = i
	p.used += charge
	p.pushHead(p.queue(where), i)
}

// remove unlinks entry i from its queue and frees it.
func (p *Policy[K, V]) remove(i int32) {
	p.unlink(p.queue(p.nodes[i].where), i)
	p.drop(i)
}

// drop frees entry i, already unlinked, putting its slot on the free list.
func (p *Policy[K, V]) drop(i int32) {
	n := &p.nodes[i]
	p.used -= n.charge
	delete(p.index, n.key)
	var zero node[K, V]
	*n = zero
	n.where, n.prev, n.next = inFree, none, p.free
	p.free = i
}

// evict drops entries until the charges fit the capacity.
func (p *Policy[K, V]) evict(evicted []K) []K {
	for p.used > p.capacity && p.Len() > 0 {
		// The small queue gives up its tail when over its share, but never
		// its only entry while the main queue has some: that would be the
		// entry just added, dropped before it could be hit.
		if p.main.n == 0 || (p.small.bytes > p.capacity/10 && p.small.n > 1) {
			evicted = p.evictSmall(evicted)
		} else {
			evicted = p.evictMain(evicted)
		}
	}
	return evicted
}

// evictSmall takes the small queue's tail: an entry hit while queued moves
// to the main queue, any other is evicted and becomes a ghost.
func (p *Policy[K, V]) evictSmall(evicted []K) []K {
	i := p.small.tail
	n := &p.nodes[i]
	p.unlink(&p.small, i)
	if n.freq > 0 {
		n.freq, n.where = 0, inMain
		p.pushHead(&p.main, i)
		return evicted
	}
	k := n.key
	p.drop(i)
	p.ghost.add(k, max(p.main.n, 64))
	return append(evicted, k)
}

// evictMain takes the main queue's tail: an entry with hits left goes back
// to the head with one hit fewer, any other is evicted.
func (p *Policy[K, V]) evictMain(evicted []K) []K {
	i := p.main.tail
	n := &p.nodes[i]
	if n.freq > 0 {
		n.freq--
		p.unlink(&p.main, i)
		p.pushHead(&p.main, i)
		return evicted
	}
	k := n.key
	p.remove(i)
	return append(evicted, k)
}

func (p *Policy[K, V]) queue(where uint8) *list {
	if where == inMain {
		return &p.main
	}
	return &p.small
}

func (p *Policy[K, V]) pushHead(l *list, i int32) {
	n := &p.nodes[i]
	n.prev, n.next = none, l.head
	if l.head != none {
		p.nodes[l.head].prev = i
	}
	l.head = i
	if l.tail == none {
		l.tail = i
	}
	l.bytes += n.charge
	l.n++
}

func (p *Policy[K, V]) unlink(l *list, i int32) {
	n := &p.nodes[i]
	if n.prev != none {
		p.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next != none {
		p.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = none, none
	l.bytes -= n.charge
	l.n--
}

// ghost remembers recently evicted keys, oldest first, without values.
type ghost[K comparable] struct {
	seqs  map[K]uint64 // key → sequence number of its newest entry in ring
	ring  []ghostEntry[K]
	head  int // index of the oldest entry in ring
	count int
	seq   uint64
}

type ghostEntry[K comparable] struct {
	key K
	seq uint64
}

// add remembers k, forgetting the oldest keys beyond limit.
func (g *ghost[K]) add(k K, limit int) {
	g.seq++
	g.seqs[k] = g.seq
	if g.count == len(g.ring) {
		g.grow()
	}
	g.ring[(g.head+g.count)%len(g.ring)] = ghostEntry[K]{key: k, seq: g.seq}
	g.count++
	for len(g.seqs) > limit || g.count > 2*limit {
		g.pop()
	}
}

// take reports whether k is remembered, forgetting it.
func (g *ghost[K]) take(k K) bool {
	if _, ok := g.seqs[k]; !ok {
		return false
	}
	delete(g.seqs, k)
	return true
}

// pop forgets the oldest entry of the ring; a key re-added since, or taken,
// has a different sequence number and stays as it is.
func (g *ghost[K]) pop() {
	e := g.ring[g.head]
	if s, ok := g.seqs[e.key]; ok && s == e.seq {
		delete(g.seqs, e.key)
	}
	var zero ghostEntry[K]
	g.ring[g.head] = zero
	g.head = (g.head + 1) % len(g.ring)
	g.count--
}

func (g *ghost[K]) grow() {
	ring := make([]ghostEntry[K], max(2*len(g.ring), 64))
	for i := range g.count {
		ring[i] = g.ring[(g.head+i)%len(g.ring)]
	}
	g.ring, g.head = ring, 0
}
