package storage_test

import (
	"context"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockInstalls makes ts's write-behind goroutine wait before installing
// each file until the returned release is called, and reports each wait on
// the returned channel.
func blockInstalls(ts *tiers) (waiting <-chan struct{}, release func()) {
	w, gate := make(chan struct{}, 16), make(chan struct{})
	storage.SetInstallHook(ts.Tiered, func() {
		w <- struct{}{}
		<-gate
	})
	return w, func() { close(gate) }
}

// TestWriteBehindCommitReturnsBeforeTheDisk: a Commit that fits memory
// returns before its disk copy exists; until the copy is in place the
// object is served from the queue, even once memory has let it go.
func TestWriteBehindCommitReturnsBeforeTheDisk(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	waiting, release := blockInstalls(ts)
	body := randomBody(1, 50_000)
	store(t, ts, meta("k", int64(len(body))), body)
	<-waiting
	wantMiss(t, ts.disk, "k")
	require.NoError(t, ts.mem.Delete(ctx, "k")) // evicted before its turn
	assert.Equal(t, body, mustGetBody(t, ts, "k"), "served while queued")
	var walked []string
	require.NoError(t, ts.Walk(ctx, func(m *storage.Meta) error { walked = append(walked, m.Key); return nil }))
	assert.Equal(t, []string{"k"}, walked, "Walk lists the queued object")
	release()
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, body, mustGetBody(t, ts.disk, "k"), "disk copy")
}

// TestWriteBehindPurgeWins deletes an object whose disk copy is written
// and about to be installed: once Delete returns, no copy may appear.
func TestWriteBehindPurgeWins(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	waiting, release := blockInstalls(ts)
	store(t, ts, meta("k", 1000), randomBody(1, 1000))
	<-waiting // written to a temporary file, not installed
	require.NoError(t, ts.Delete(ctx, "k"))
	release()
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	for _, tier := range []storage.Tier{ts.mem, ts.disk, ts} {
		wantMiss(t, tier, "k")
	}
}

// TestWriteBehindNewerVersionWins replaces an object whose older version
// is about to be installed on disk: the disk ends with the newer one.
func TestWriteBehindNewerVersionWins(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	waiting, release := blockInstalls(ts)
	v1, v2 := randomBody(1, 1000), randomBody(2, 3000)
	store(t, ts, meta("k", int64(len(v1))), v1)
	<-waiting
	store(t, ts, meta("k", int64(len(v2))), v2)
	release()
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, v2, mustGetBody(t, ts.disk, "k"), "disk copy")
	assert.Equal(t, v2, mustGetBody(t, ts, "k"))
}

// TestWriteBehindFullQueueKeepsMemoryOnly fills the queue while the disk
// writer is held: the object that does not fit is kept in memory only,
// counted, and the disk's older copy of it removed.
func TestWriteBehindFullQueueKeepsMemoryOnly(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{WriteBehindBytes: 80 << 10, Registerer: reg})
	old := randomBody(9, 1000)
	store(t, ts.disk, meta("b", int64(len(old))), old)
	waiting, release := blockInstalls(ts)
	a, b := randomBody(1, 40_000), randomBody(2, 40_000)
	store(t, ts, meta("a", int64(len(a))), a)
	<-waiting
	store(t, ts, meta("a2", int64(len(a))), a) // queued behind a: two bodies of ten pages are the bound
	store(t, ts, meta("b", int64(len(b))), b)  // no room
	assert.Equal(t, 1.0, counter(t, reg, "outpost_tiered_write_behind_dropped_total", ""))
	wantMiss(t, ts.disk, "b") // the older copy is gone
	assert.Equal(t, b, mustGetBody(t, ts, "b"), "served from memory")
	release()
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, 2.0, counter(t, reg, "outpost_tiered_write_behind_written_total", ""))
	assert.Zero(t, gauge(t, reg, "outpost_tiered_write_behind_bytes"))
	wantMiss(t, ts.disk, "b")
}

// TestWriteBehindCloseWritesTheQueue: objects queued when Tiered closes
// are on disk when Close returns, so a restart finds them.
func TestWriteBehindCloseWritesTheQueue(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	for i := range 50 {
		store(t, ts, meta(keyN(i), 5000), randomBody(uint64(i), 5000))
	}
	require.NoError(t, ts.Tiered.Close())
	for i := range 50 {
		assert.Equal(t, randomBody(uint64(i), 5000), mustGetBody(t, ts.disk, keyN(i)))
	}
}

// TestDiskMinUsesTwo: with DiskMinUses 2, an object asked for once never
// reaches the disk; its second request (a memory hit, or a new fetch soon
// after memory evicted it) queues its disk copy; a replacement of an object
// that has one keeps it on disk.
func TestDiskMinUsesTwo(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{MaxBytes: 1 << 20, MaxObjectSize: 64 << 10}, storage.TieredConfig{DiskMinUses: 2})
	store(t, ts, meta("once", 1000), randomBody(1, 1000))
	store(t, ts, meta("hit", 1000), randomBody(2, 1000))
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	wantMiss(t, ts.disk, "once")
	wantMiss(t, ts.disk, "hit")

	mustGetBody(t, ts, "hit") // the second request
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, randomBody(2, 1000), mustGetBody(t, ts.disk, "hit"), "disk copy after a memory hit")

	// Evicted from memory by a flood, then fetched again: a ghost.
	store(t, ts, meta("again", 30_000), randomBody(3, 30_000))
	for i := range 60 {
		store(t, ts, meta(keyN(i), 30_000), randomBody(4, 30_000))
	}
	wantMiss(t, ts.mem, "again")
	store(t, ts, meta("again", 30_000), randomBody(5, 30_000))
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, randomBody(5, 30_000), mustGetBody(t, ts.disk, "again"), "disk copy of a key fetched again")

	store(t, ts, meta("hit", 2000), randomBody(6, 2000)) // a new version replaces one on disk
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	assert.Equal(t, randomBody(6, 2000), mustGetBody(t, ts.disk, "hit"), "disk copy of the new version")
	require.NoError(t, ts.Delete(ctx, "hit"))
	wantMiss(t, ts, "hit")
}
