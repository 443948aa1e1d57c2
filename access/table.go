package access

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// table holds the token buckets of clients (or of prefixes), keyed by
// address, bounded by max entries: it is split into shards, each a map and
// a list in order of use, and a shard that is full forgets its least
// recently seen client to make room. An attacker with many addresses can
// therefore push other clients out (they start again with full buckets),
// but never grow the table. It is safe for concurrent use.
type table struct {
	shards   []shard
	shift    uint // 64 - log2(len(shards))
	seed     [2]uint64
	perShard int
	// limits and bursts of new entries' buckets; a zero limit leaves that
	// bucket unused.
	reqLimit, bwLimit rate.Limit
	reqBurst, bwBurst int

	n       atomic.Int64
	evicted prometheus.Counter // nil: not counted
}

// entry is one client's buckets. It is linked into its shard's list while
// in the table; a request that holds an entry evicted meanwhile keeps using
// its buckets for that request.
type entry struct {
	key        netip.Addr
	prev, next *entry
	req, bw    rate.Limiter
}

type shard struct {
	mu  sync.Mutex
	m   map[netip.Addr]*entry
	lru entry // sentinel: lru.next is the most recently used entry
	_   [64]byte
}

// minPerShard keeps shards large enough that least-recently-used order in
// a shard stays close to the order in the whole table.
const minPerShard = 64

func newTable(max int, reqLimit rate.Limit, reqBurst int, bwLimit rate.Limit, bwBurst int) *table {
	n := 1
	for n < 64 && max/(n*2) >= minPerShard {
		n *= 2
	}
	t := &table{
		shards:   make([]shard, n),
		shift:    uint(64 - bits.TrailingZeros(uint(n))),
		perShard: max / n,
		reqLimit: reqLimit, reqBurst: reqBurst,
		bwLimit: bwLimit, bwBurst: bwBurst,
	}
	var b [16]byte
	rand.Read(b[:])
	t.seed = [2]uint64{binary.LittleEndian.Uint64(b[:8]) | 1, binary.LittleEndian.Uint64(b[8:])}
	for i := range t.shards {
		s := &t.shards[i]
		s.m = make(map[netip.Addr]*entry)
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return t
}

// capacity is the most entries the table holds.
func (t *table) capacity() int { return t.perShard * len(t.shards) }

// len returns the number of entries.
func (t *table) len() int { return int(t.n.Load()) }

// shardOf picks key's shard with a hash seeded per table, so nobody can
// aim addresses at one shard.
func (t *table) shardOf(key netip.Addr) *shard {
	if len(t.shards) == 1 {
		return &t.shards[0]
	}
	a := key.As16()
	lo := binary.LittleEndian.Uint64(a[:8])
	hi := binary.LittleEndian.Uint64(a[8:])
	h := (lo ^ t.seed[1]) * t.seed[0]
	h ^= hi
	h *= 0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return &t.shards[h>>t.shift]
}

// get returns key's entry, making it (with full buckets) when the client is
// new, and marks it as the most recently used.
func (t *table) get(key netip.Addr) *entry {
	s := t.shardOf(key)
	s.mu.Lock()
	e, ok := s.m[key]
	if ok {
		if s.lru.next != e {
			e.unlink()
			s.pushFront(e)
		}
		s.mu.Unlock()
		return e
	}
	if len(s.m) >= t.perShard {
		old := s.lru.prev
		old.unlink()
		delete(s.m, old.key)
		t.n.Add(-1)
		if t.evicted != nil {
			t.evicted.Inc()
		}
	}
	e = &entry{key: key}
	// A zero Limiter given its limit and burst as of the zero Time is
	// full at its first use: it has refilled since the beginning of time.
	if t.reqLimit > 0 {
		e.req.SetLimitAt(time.Time{}, t.reqLimit)
		e.req.SetBurstAt(time.Time{}, t.reqBurst)
	}
	if t.bwLimit > 0 {
		e.bw.SetLimitAt(time.Time{}, t.bwLimit)
		e.bw.SetBurstAt(time.Time{}, t.bwBurst)
	}
	s.m[key] = e
	s.pushFront(e)
	t.n.Add(1)
	s.mu.Unlock()
	return e
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

func (e *entry) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
