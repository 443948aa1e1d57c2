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
// With Config.Adaptive, the small queue's share is not fixed at a tenth but
// learnt, as ARC learns its split (Megiddo and Modha, FAST 2003): keys
// evicted from the main queue are remembered too, in a second ghost queue.
// A miss on a key the small queue dropped says the small queue was too
// short to see the key's second request, and grows it by the key's charge;
// a miss on a key the main queue dropped says the main queue was too short,
// and shrinks the small one (each step scaled by the ratio of the two ghost
// queues' lengths, as in ARC). Such a key also goes straight back to the
// main queue. When popularity shifts, last period's popular objects leave
// the main queue through its ghost while newcomers find a longer small
// queue, so the cache follows the shift about as fast as LRU does, while a
// steady or scan-heavy workload keeps the small queue short and the main
// queue protected.
//
// Entries live in one slice linked by int32 indices, with no pointers, so
// a million of them cost the garbage collector nothing to scan.
package s3fifo

import "slices"

// maxFreq saturates the per-entry hit counter by default, as in the paper
// (two bits).
const maxFreq = 3

// Config configures a Policy. Only Capacity is required.
type Config[K comparable, V any] struct {
	// Capacity is the byte budget the charges must fit.
	Capacity int64
	// MaxFreq saturates the per-entry hit counter: an entry the main queue's
	// hand finds with hits left goes round again, up to MaxFreq times.
	// Lower values forget faster. Zero means 3; at most 255.
	MaxFreq int
	// Adaptive learns the small queue's share from two ghost queues (see
	// the package comment); without it the share is a tenth of Capacity.
	Adaptive bool
	// OnEvict, if set, is called with each entry the policy evicts (not
	// those removed by Remove or replaced by Add), before Add, Restore or
	// SetCapacity returns. It must not call the policy.
	OnEvict func(k K, v V)
}

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
	ghost    ghost[K] // keys the small queue evicted
	// smallTarget is the small queue's share in bytes: beyond it, the small
	// queue gives up its tail first.
	smallTarget int64
	maxFreq     uint8
	adaptive    bool
	ghostMain   ghost[K] // adaptive only: keys the main queue evicted
	onEvict     func(K, V)
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

// New returns an empty Policy holding at most capacity bytes, with the
// paper's fixed small queue.
func New[K comparable, V any](capacity int64) *Policy[K, V] {
	return NewWithConfig(Config[K, V]{Capacity: capacity})
}

// NewWithConfig returns an empty Policy configured by cfg.
func NewWithConfig[K comparable, V any](cfg Config[K, V]) *Policy[K, V] {
	if cfg.MaxFreq <= 0 {
		cfg.MaxFreq = maxFreq
	}
	return &Policy[K, V]{
		capacity:    cfg.Capacity,
		free:        none,
		index:       make(map[K]int32),
		small:       list{head: none, tail: none},
		main:        list{head: none, tail: none},
		ghost:       ghost[K]{seqs: make(map[K]uint64)},
		smallTarget: cfg.Capacity / 10,
		maxFreq:     uint8(min(cfg.MaxFreq, 255)),
		adaptive:    cfg.Adaptive,
		ghostMain:   ghost[K]{seqs: make(map[K]uint64)},
		onEvict:     cfg.OnEvict,
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
	if n.freq < p.maxFreq {
		n.freq++
	}
	return n.val, true
}

// Ghost reports whether k was evicted recently enough to be remembered.
func (p *Policy[K, V]) Ghost(k K) bool {
	_, small := p.ghost.seqs[k]
	_, main := p.ghostMain.seqs[k]
	return small || main
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

// Freq returns the hit count of k (0 to MaxFreq; it saturates, and the
// main queue lowers it as its hand passes), or -1 when k is absent.
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
// its queue and frequency; a key that is a ghost enters the main queue (and,
// adaptive, moves the small queue's share); others enter the small queue.
// An entry charged more than the capacity evicts everything, itself
// included.
func (p *Policy[K, V]) Add(k K, v V, charge int64, evicted []K) []K {
	where, freq := inSmall, uint8(0)
	if i, ok := p.index[k]; ok {
		where, freq = p.nodes[i].where, p.nodes[i].freq
		p.remove(i)
	} else if p.ghost.take(k) {
		where = inMain
		if p.adaptive {
			// The small queue dropped k before its second request.
			p.moveTarget(charge * max(1, int64(p.ghostMain.len()/max(p.ghost.len(), 1))))
		}
	} else if p.adaptive && p.ghostMain.take(k) {
		where = inMain
		// The main queue dropped k before its next request.
		p.moveTarget(-charge * max(1, int64(p.ghost.len()/max(p.ghostMain.len(), 1))))
	}
	p.insert(k, v, charge, where, freq)
	return p.evict(evicted)
}

// moveTarget moves the small queue's share by delta bytes, within 1% and
// 90% of the capacity.
func (p *Policy[K, V]) moveTarget(delta int64) {
	p.smallTarget = min(max(p.smallTarget+delta, p.capacity/100), p.capacity*9/10)
}

// SetSmallTarget sets the small queue's share to n bytes (within 1% and
// 90% of the capacity). An adaptive policy moves it from there.
func (p *Policy[K, V]) SetSmallTarget(n int64) {
	p.smallTarget = 0
	p.moveTarget(n)
}

// SmallTarget returns the small queue's share of the capacity in bytes: a
// tenth, or what the adaptive policy has learnt.
func (p *Policy[K, V]) SmallTarget() int64 { return p.smallTarget }

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
	if p.capacity > 0 {
		p.smallTarget = int64(float64(p.smallTarget) * float64(capacity) / float64(p.capacity))
	} else {
		p.smallTarget = capacity / 10
	}
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
		if p.main.n == 0 || (p.small.bytes > p.smallTarget && p.small.n > 1) {
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
	k, v := n.key, n.val
	p.drop(i)
	p.ghost.add(k, max(p.main.n, 64))
	if p.onEvict != nil {
		p.onEvict(k, v)
	}
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
	k, v := n.key, n.val
	p.remove(i)
	if p.adaptive {
		p.ghostMain.add(k, max(p.main.n, 64))
	}
	if p.onEvict != nil {
		p.onEvict(k, v)
	}
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

// len returns the number of keys remembered.
func (g *ghost[K]) len() int { return len(g.seqs) }

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
