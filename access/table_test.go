package access

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// addrN returns the n-th of a million distinct addresses, each in its own
// /64, so both tables see a new key every time.
func addrN(n int) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	binary.BigEndian.PutUint32(b[4:8], uint32(n))
	b[15] = 1
	return netip.AddrFrom16(b)
}

// TestMillionClientsStayWithinTheBound: a million distinct addresses (each
// in its own /64) pass through a limiter whose tables hold 10000 entries.
// Neither table ever holds more; memory after them is what 10000 entries
// take; and a client that keeps coming back keeps its bucket throughout
// (least recently used goes first), so an attacker's addresses do not
// reset a steady client's limit.
func TestMillionClientsStayWithinTheBound(t *testing.T) {
	const bound, attackers = 10_000, 1_000_000
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	l, err := newLimiter(RateLimit{
		Client:     Limit{Requests: 0.001, Burst: 1, Bandwidth: 1 << 20},
		Prefix:     Limit{Requests: 0.001, Burst: 1},
		MaxClients: bound,
	})
	require.NoError(t, err)
	require.LessOrEqual(t, l.client.capacity(), bound)
	steady := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	reason, _, _ := l.admit(now, steady)
	require.Empty(t, reason, "the steady client's first request")
	for i := range attackers {
		// Plain ifs: this loop runs a million times, under -race too.
		if reason, _, _ := l.admit(now, addrN(i)); reason != "" {
			t.Fatalf("attacker %d is new, yet refused (%s)", i, reason)
		}
		if i%100 == 0 {
			if reason, _, _ := l.admit(now, steady); reason != reasonClientRequests {
				t.Fatalf("after %d attackers the steady client was forgotten: it has its burst again", i)
			}
		}
		if c, p := l.client.len(), l.prefix.len(); c > bound || p > bound {
			t.Fatalf("after %d attackers the tables hold %d and %d entries, above %d", i, c, p, bound)
		}
	}
	assert.LessOrEqual(t, l.client.len(), bound)
	assert.LessOrEqual(t, l.prefix.len(), bound)
	assert.Equal(t, l.client.capacity(), l.client.len(), "full")

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("after %d addresses: %d + %d entries, heap grew %d bytes (%d per entry)",
		attackers, l.client.len(), l.prefix.len(), grown, grown/int64(l.client.len()+l.prefix.len()))
	assert.Less(t, grown, int64(2*bound*1024), "two full tables of %d, at most 1 KiB an entry", bound)
	runtime.KeepAlive(l)
}

func TestTableForgetsTheLeastRecentlyUsed(t *testing.T) {
	tb := newTable(3, 1, 1, 0, 0)
	a, b, c, d := addrN(1), addrN(2), addrN(3), addrN(4)
	ea := tb.get(a)
	tb.get(b)
	tb.get(c)
	require.Same(t, ea, tb.get(a), "a is used again: b is now the oldest")
	tb.get(d)
	assert.Equal(t, 3, tb.len())
	assert.Same(t, ea, tb.get(a), "a was kept")
	s := tb.shardOf(b)
	s.mu.Lock()
	_, kept := s.m[b]
	s.mu.Unlock()
	assert.False(t, kept, "b, the least recently used, was forgotten")
}

func TestNewClientsHaveTheirBurst(t *testing.T) {
	tb := newTable(10, 1, 5, 0, 0)
	e := tb.get(addrN(1))
	now := time.Now()
	assert.True(t, e.req.AllowN(now, 5), "a new client may send its whole burst at once")
	assert.False(t, e.req.AllowN(now, 1))
}
