package storage_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// degradable is a Tiered with a fake clock, a log and a registry, whose
// disk fails while fault returns an error.
type degradable struct {
	*tiers
	clock *fakeClock
	logs  *logBuffer
	reg   *prometheus.Registry
	fault atomic.Pointer[func(op string) error]
	ops   atomic.Int64 // disk operations attempted
}

func newDegradable(t *testing.T, mcfg storage.MemoryConfig) *degradable {
	dg := &degradable{clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}, logs: &logBuffer{}, reg: prometheus.NewPedanticRegistry()}
	dg.tiers = newTiered(t, "", mcfg, storage.TieredConfig{
		RetryInterval: time.Minute,
		Now:           dg.clock.Now,
		Logger:        slog.New(slog.NewTextHandler(dg.logs, nil)),
		Registerer:    dg.reg,
	})
	storage.SetDiskFault(dg.disk, func(op string) error {
		dg.ops.Add(1)
		if f := dg.fault.Load(); f != nil {
			return (*f)(op)
		}
		return nil
	})
	return dg
}

// failDisk makes every disk operation fail with errno; 0 heals the disk.
func (dg *degradable) failDisk(errno syscall.Errno) {
	if errno == 0 {
		dg.fault.Store(nil)
		return
	}
	f := func(string) error { return errno }
	dg.fault.Store(&f)
}

func (dg *degradable) degraded(t *testing.T) float64 {
	return gauge(t, dg.reg, "outpost_disk_degraded")
}

// TestTieredDiskFullMidFill fails the disk while a body that fits memory
// is being written: the write carries on in memory (its disk copy follows
// Commit), a follower reads every byte, the object is served from memory,
// the disk write fails, and the tier runs memory-only until the retry
// interval is over and the disk works again.
func TestTieredDiskFullMidFill(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{})
	body := randomBody(1, 300_000)
	w, err := dg.Put(ctx, meta("k", int64(len(body))))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(body[:100_000])
	require.NoError(t, err)

	dg.failDisk(syscall.ENOSPC)
	_, err = w.Write(body[100_000:200_000])
	require.NoError(t, err, "Write with the disk full and memory fine")
	follower := make([]byte, len(body))
	n, err := w.ReadAt(follower, 0)
	assert.Equal(t, 200_000, n, "bytes a follower reads after the disk failed")
	assert.ErrorIs(t, err, io.EOF)
	_, err = w.Write(body[200_000:])
	require.NoError(t, err)
	require.NoError(t, w.Commit(), "Commit with the disk full and memory fine")
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered)) // the disk write fails
	n, _ = w.ReadAt(follower, 0)
	assert.Equal(t, len(body), n)
	assert.Equal(t, body, follower, "what the follower read")
	assert.Equal(t, body, mustGetBody(t, dg, "k"), "served from memory")
	assert.Equal(t, 1.0, dg.degraded(t))
	assert.Contains(t, dg.logs.String(), "serving from memory only")

	// Memory only: the disk is left alone until the retry interval is over.
	before := dg.ops.Load()
	store(t, dg, meta("k2", 10), make([]byte, 10))
	mustGetBody(t, dg, "k2")
	wantMiss(t, dg, "never-stored")
	assert.Equal(t, before, dg.ops.Load(), "disk operations while degraded (k2 has no disk copy to remove)")

	dg.failDisk(0)
	dg.clock.Add(time.Minute)
	store(t, dg, meta("k3", 10), make([]byte, 10))
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	assert.Equal(t, 0.0, dg.degraded(t), "after the retry interval, with the disk healed")
	assert.Contains(t, dg.logs.String(), "disk tier recovered")
	assert.Equal(t, make([]byte, 10), mustGetBody(t, dg.disk, "k3"), "written to disk again")
}

// TestTieredDiskOnlyFillFails fails the disk under a body too large for
// memory: Write reports the error, and every byte accepted before stays
// readable for the caller to move elsewhere.
func TestTieredDiskOnlyFillFails(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{MaxObjectSize: 64 << 10})
	body := randomBody(2, 300_000)
	w, err := dg.Put(ctx, meta("big", int64(len(body))))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(body[:150_000])
	require.NoError(t, err)
	dg.failDisk(syscall.EIO)
	_, err = w.Write(body[150_000:])
	assert.ErrorIs(t, err, syscall.EIO, "Write of a disk-only body on a failing disk")
	got := make([]byte, len(body))
	n, err := w.ReadAt(got, 0)
	assert.Equal(t, 150_000, n)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, body[:150_000], got[:n])
	assert.Error(t, w.Commit())
	wantMiss(t, dg, "big")
	assert.Equal(t, 1.0, dg.degraded(t))

	// While degraded, a body too large for memory is refused at Put.
	_, err = dg.Put(ctx, meta("big2", int64(len(body))))
	assert.ErrorIs(t, err, storage.ErrTooLarge)
}

func TestTieredDiskReadFailureIsAMiss(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{MaxObjectSize: 64 << 10})
	store(t, dg, meta("big", 100<<10), randomBody(3, 100<<10))
	dg.failDisk(syscall.EIO)
	o, err := dg.Get(ctx, "big")
	if err == nil {
		o.Close()
	}
	assert.ErrorIs(t, err, storage.ErrNotFound, "Get on a failing disk")
	assert.Equal(t, 1.0, dg.degraded(t))
}

// TestTieredUnknownLengthWhileDegraded checks the fallback of a body of
// unknown length with the disk failing: memory, until it outgrows memory.
func TestTieredUnknownLengthWhileDegraded(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{MaxObjectSize: 64 << 10})
	dg.failDisk(syscall.EIO)
	small := randomBody(4, 1000)
	store(t, dg, meta("small", -1), small)
	assert.Equal(t, small, mustGetBody(t, dg, "small"))

	w, err := dg.Put(ctx, meta("growing", -1))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(make([]byte, 40<<10))
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 40<<10))
	assert.ErrorIs(t, err, storage.ErrTooLarge, "a body outgrowing memory with the disk failing")
	n, _ := w.ReadAt(make([]byte, 100<<10), 0)
	assert.Equal(t, 40<<10, n, "bytes readable after the refusal")
}

func TestTieredDeleteReachesFailingDisk(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{})
	store(t, dg, meta("k", 10), make([]byte, 10))
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	dg.failDisk(syscall.EIO)
	wantMiss(t, dg, "nothing") // a read starts memory-only mode
	assert.ErrorIs(t, dg.Delete(ctx, "k"), syscall.EIO, "a purge that cannot reach the disk says so")
	dg.failDisk(0)
	require.NoError(t, dg.Delete(ctx, "k"))
	wantMiss(t, dg.disk, "k")
}

// TestTieredDeleteDoesNotEndDegradedMode fills a disk (every new file
// fails) while commits reach memory and delete the older disk copies, which
// works on a full disk. Each such delete used to count as the disk's
// recovery, so every Put logged the failure anew.
func TestTieredDeleteDoesNotEndDegradedMode(t *testing.T) {
	dg := newDegradable(t, storage.MemoryConfig{})
	full := func(op string) error {
		if op == "create" {
			return syscall.ENOSPC
		}
		return nil
	}
	dg.fault.Store(&full)
	for i := range 5 {
		store(t, dg, meta(keyN(i), 1), []byte("x"))
		require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
		assert.Equal(t, 1.0, dg.degraded(t), "after commit %d", i)
	}
	require.NoError(t, dg.Delete(context.Background(), keyN(0)))
	assert.Equal(t, 1.0, dg.degraded(t), "after a purge")
	assert.Equal(t, 1, strings.Count(dg.logs.String(), "serving from memory only"), "failure lines logged")
	assert.NotContains(t, dg.logs.String(), "recovered")
}

// TestTieredWalkFailsWithFailingDisk walks a tier whose disk cannot be
// read. The walk used to skip what it could not read and report success,
// so a purge sweeper took a walk that saw nothing on disk as complete.
func TestTieredWalkFailsWithFailingDisk(t *testing.T) {
	dg := newDegradable(t, storage.MemoryConfig{MaxObjectSize: 64 << 10})
	store(t, dg, meta("disk-only", 100<<10), make([]byte, 100<<10))
	dg.failDisk(syscall.EIO)
	wantMiss(t, dg, "disk-only") // degraded
	err := dg.Walk(context.Background(), func(*storage.Meta) error { return nil })
	assert.ErrorIs(t, err, syscall.EIO, "Walk with the disk failing")
}

// TestTieredMemoryOnlyCommitHidesOlderDiskCopy replaces an object while
// the disk fails, so the new version reaches memory only and the old one
// cannot be deleted from disk. The old version used to be served again,
// once the disk worked and memory had let the new one go.
func TestTieredMemoryOnlyCommitHidesOlderDiskCopy(t *testing.T) {
	ctx := context.Background()
	dg := newDegradable(t, storage.MemoryConfig{})
	v1, v2 := randomBody(1, 1000), randomBody(2, 1000)
	store(t, dg, meta("k", 1000), v1)
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	dg.failDisk(syscall.EIO)
	store(t, dg, meta("k", 1000), v2)
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered)) // its disk write fails
	assert.Equal(t, 1.0, dg.degraded(t))
	assert.Equal(t, v2, mustGetBody(t, dg, "k"))

	dg.failDisk(0)
	dg.clock.Add(time.Minute)
	require.NoError(t, dg.mem.Delete(ctx, "k")) // memory lets the new version go
	wantMiss(t, dg, "k")
	wantMiss(t, dg.disk, "k") // the Get removed the old version
}

// TestTieredMemoryOnlyCommitFailsWhenOlderDiskCopyStays fills the set of
// keys whose disk copy Tiered ignores: a Commit that reaches memory only
// and cannot delete the older disk copy must then fail, and leave the tier
// as it was, rather than report a new version stored while the old one can
// come back.
func TestTieredMemoryOnlyCommitFailsWhenOlderDiskCopyStays(t *testing.T) {
	dg := newDegradable(t, storage.MemoryConfig{})
	storage.SetMaxStaleKeys(dg.Tiered, 0)
	v1 := randomBody(1, 1000)
	store(t, dg, meta("k", 1000), v1)
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	dg.failDisk(syscall.EIO)
	wantMiss(t, dg, "nothing") // a failed read: memory-only mode, so the Commit below is memory-only
	w, err := dg.Put(context.Background(), meta("k", 1000))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(randomBody(2, 1000))
	require.NoError(t, err)
	assert.ErrorIs(t, w.Commit(), syscall.EIO, "Commit that could not delete the older disk copy")
	wantMiss(t, dg.mem, "k")

	dg.failDisk(0)
	dg.clock.Add(time.Minute)
	assert.Equal(t, v1, mustGetBody(t, dg, "k"), "the version the failed Commit would have replaced")
}

// TestTieredFailedWriteBehindKeepsTierConsistent replaces an object whose
// disk copy then cannot be written, nor the older copy removed, nor the
// key remembered as stale: memory lets the new version go too, so the
// tier serves the older one from now on rather than flip back to it when
// memory evicts the new one.
func TestTieredFailedWriteBehindKeepsTierConsistent(t *testing.T) {
	dg := newDegradable(t, storage.MemoryConfig{})
	storage.SetMaxStaleKeys(dg.Tiered, 0)
	v1, v2 := randomBody(1, 1000), randomBody(2, 1000)
	store(t, dg, meta("k", 1000), v1)
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	dg.failDisk(syscall.EIO)
	store(t, dg, meta("k", 1000), v2) // Commit returns once memory holds it
	require.NoError(t, storage.FlushWriteBehind(dg.Tiered))
	wantMiss(t, dg.mem, "k")
	assert.Contains(t, dg.logs.String(), "kept the older disk copy")

	dg.failDisk(0)
	dg.clock.Add(time.Minute)
	assert.Equal(t, v1, mustGetBody(t, dg, "k"), "the version the failed write would have replaced")
}
