package purge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testCommitDelay = 10 * time.Minute

func TestSweepDeletesWhatHardBansMatch(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	before := clk.Now().Add(-time.Hour)
	store(t, tier, storage.Meta{Key: "old-tagged", URL: "http://a.test/1", Tags: []string{"t"}, ResponseTime: before})
	store(t, tier, storage.Meta{Key: "old-other", URL: "http://a.test/2", Tags: []string{"u"}, ResponseTime: before})
	rec := mustPurge(t, ix, Request{Tags: []string{"t"}})
	store(t, tier, storage.Meta{Key: "new-tagged", URL: "http://a.test/3", Tags: []string{"t"}, ResponseTime: clk.Advance(time.Second)})

	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, "old-tagged"), "old tagged object")
	assert.True(t, stored(t, tier, "old-other"), "object with another tag")
	assert.True(t, stored(t, tier, "new-tagged"), "tagged object fetched after the purge")
	assert.Equal(t, rec.ID, ix.Recent(1)[0].ID)
	assert.Equal(t, int64(1), ix.Recent(1)[0].Purged, "objects removed on the purge's behalf")
	assert.Equal(t, 1, ix.Len(), "the ban waits CommitDelay for late commits")

	clk.Advance(testCommitDelay)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.Zero(t, ix.Len(), "ban retired by a walk CommitDelay after it")
	_, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/1", Tags: []string{"t"}, ResponseTime: before})
	assert.False(t, banned, "a retired ban matches nothing")
}

func TestSweepURLPurgeRemovesEveryVariant(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier})
	const u = "http://a.test/video.mp4"
	before := clk.Now().Add(-time.Hour)
	keys := []string{"index", "gzip", "br", "slice-0", "slice-1"}
	for _, k := range keys {
		store(t, tier, storage.Meta{Key: k, URL: u, ResponseTime: before})
	}
	store(t, tier, storage.Meta{Key: "other", URL: u + "?x", ResponseTime: before})
	mustPurge(t, ix, Request{URLs: []string{u}})

	require.NoError(t, ix.Sweep(context.Background()))
	for _, k := range keys {
		assert.False(t, stored(t, tier, k), "variant %s", k)
	}
	assert.True(t, stored(t, tier, "other"))
	assert.Equal(t, int64(len(keys)), ix.Recent(1)[0].Purged)
}

func TestSoftBanLeavesObjectsUntilRefreshed(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	old := storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)}
	store(t, tier, old)
	mustPurge(t, ix, Request{Prefixes: []string{"http://a.test/"}, Soft: true})

	clk.Advance(testCommitDelay)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.True(t, stored(t, tier, "k"), "soft-banned object left for the edge")
	assert.Equal(t, 1, ix.Len(), "the ban stays while a stale object is stored")
	_, soft, banned := ix.Check(&old)
	assert.True(t, banned && soft, "stale: banned %v soft %v", banned, soft)

	// The edge refetches it.
	fresh := old
	fresh.ResponseTime = clk.Advance(time.Second)
	store(t, tier, fresh)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.True(t, stored(t, tier, "k"))
	assert.Zero(t, ix.Len(), "nothing stored predates the ban")
}

func TestSoftBanRemovesUnrefreshedObjectsAfterSoftTTL(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay, SoftTTL: time.Hour})
	store(t, tier, storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)})
	mustPurge(t, ix, Request{All: true, Soft: true})

	clk.Advance(time.Hour - time.Second)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.True(t, stored(t, tier, "k"), "before SoftTTL")

	clk.Advance(time.Second)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, "k"), "after SoftTTL")
	assert.Zero(t, ix.Len())
}

func TestBanOutlivesLateCommits(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	banTime := mustPurge(t, ix, Request{Hosts: []string{"a.test"}}).Time
	clk.Advance(testCommitDelay / 2)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.Equal(t, 1, ix.Len(), "retired before CommitDelay")

	// A fill whose response arrived before the ban commits only now.
	late := storage.Meta{Key: "late", URL: "http://a.test/big.iso", ResponseTime: banTime.Add(-time.Second)}
	store(t, tier, late)
	_, _, banned := ix.Check(&late)
	assert.True(t, banned, "late commit of a purged response")

	clk.Advance(testCommitDelay / 2)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, "late"))
	assert.Zero(t, ix.Len())
}

// walkHookTier runs beforeVisit before the walk's first object, to commit or
// delete while a walk is under way. It fails on purpose: Delete with
// failDelete, Walk with failWalk before listing anything, or with walkErr
// after listing everything.
type walkHookTier struct {
	*storage.Memory
	beforeVisit func()
	failDelete  error
	failWalk    error
	walkErr     error
}

func (w *walkHookTier) Walk(ctx context.Context, fn func(*storage.Meta) error) error {
	if w.failWalk != nil {
		return w.failWalk
	}
	var once sync.Once
	err := w.Memory.Walk(ctx, func(m *storage.Meta) error {
		if w.beforeVisit != nil {
			once.Do(w.beforeVisit)
		}
		return fn(m)
	})
	if err != nil {
		return err
	}
	return w.walkErr
}

func (w *walkHookTier) Delete(ctx context.Context, key string) error {
	if w.failDelete != nil {
		return w.failDelete
	}
	return w.Memory.Delete(ctx, key)
}

// TestSweepDeletedACopyRefetchedDuringTheWalk: a walk lists every object
// first (a memory tier), and the refetches a purge causes come right after
// it; deleting by key on the listing deleted the refetched copy, and cost
// the origin a second fetch per purged object.
func TestSweepDeletedACopyRefetchedDuringTheWalk(t *testing.T) {
	clk := newClock()
	tier := &walkHookTier{Memory: newMemory(t)}
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	m := storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)}
	store(t, tier, m)
	other := storage.Meta{Key: "o", URL: "http://a.test/y", ResponseTime: m.ResponseTime}
	store(t, tier, other)
	mustPurge(t, ix, Request{URLs: []string{m.URL, other.URL}})
	fresh := m
	tier.beforeVisit = func() {
		fresh.RequestTime = clk.Advance(time.Second)
		fresh.ResponseTime = fresh.RequestTime
		store(t, tier, fresh) // the edge refetched it
	}
	require.NoError(t, ix.Sweep(context.Background()))
	assert.True(t, stored(t, tier, "k"), "the copy refetched after the walk listed the old one")
	assert.False(t, stored(t, tier, "o"), "the banned copy nothing replaced")
	_, _, banned := ix.Check(&fresh)
	assert.False(t, banned, "a copy fetched after the purge")

	tier.beforeVisit = nil
	clk.Advance(testCommitDelay)
	require.NoError(t, ix.Sweep(context.Background()))
	assert.True(t, stored(t, tier, "k"), "the refetched copy stays")
	assert.Zero(t, ix.Len(), "the bans retire: nothing they match is left")
}

// TestSweepDeletesAReplacementThatIsBannedToo: a copy stored since the
// listing that a ban still matches (handed on by a parent tier that had
// not applied the purge: obtained before it) is deleted like the one listed.
func TestSweepDeletesAReplacementThatIsBannedToo(t *testing.T) {
	clk := newClock()
	tier := &walkHookTier{Memory: newMemory(t)}
	ix := newIndex(t, clk, Config{Tier: tier})
	m := storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)}
	store(t, tier, m)
	mustPurge(t, ix, Request{URLs: []string{m.URL}})
	tier.beforeVisit = func() {
		old := m
		old.RequestTime = clk.Advance(time.Second)
		old.ResponseTime = old.RequestTime
		old.OriginTime = m.ResponseTime // the parent's copy, from before the purge
		store(t, tier, old)
	}
	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, "k"))
}

// getlessTier is a tier whose Get finds nothing, as a storage.Tiered
// answers for an object on its disk while the disk is degraded, and which
// counts the calls. Walk and Delete reach the memory tier.
type getlessTier struct {
	*storage.Memory
	gets atomic.Int64
}

func (g *getlessTier) Get(context.Context, string) (storage.Object, error) {
	g.gets.Add(1)
	return nil, storage.ErrNotFound
}

func TestBanRetiredWhileAGetCouldNotSeeItsObject(t *testing.T) {
	clk := newClock()
	tier := &getlessTier{Memory: newMemory(t)}
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	m := storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)}
	store(t, tier, m)
	mustPurge(t, ix, Request{URLs: []string{m.URL}})
	clk.Advance(testCommitDelay)

	require.NoError(t, ix.Sweep(context.Background()))
	_, err := tier.Memory.Get(context.Background(), "k")
	assert.ErrorIs(t, err, storage.ErrNotFound, "the banned object was deleted before its ban retired")
	assert.Zero(t, ix.Len())
	assert.Positive(t, tier.gets.Load(), "the sweeper looked for a replacement, and found none")
}

// TestSweepLeavesNothingOfWhatItDeletes: the sweeper's look for a
// replacement (a Get) may promote a popular disk object into memory; the
// delete that follows removes it from both tiers.
func TestSweepLeavesNothingOfWhatItDeletes(t *testing.T) {
	clk := newClock()
	ctx := context.Background()
	mem := newMemory(t)
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: t.TempDir(), MaxBytes: 64 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { disk.Close() })
	<-disk.Ready()
	reg := prometheus.NewRegistry()
	tiered, err := storage.NewTiered(mem, disk, storage.TieredConfig{Now: clk.Now, Registerer: reg, DiskMinUses: 1})
	require.NoError(t, err)
	ix := newIndex(t, clk, Config{Tier: tiered, CommitDelay: testCommitDelay})

	store(t, tiered, storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)})
	require.NoError(t, tiered.Flush(ctx))    // its disk copy is written behind
	require.NoError(t, mem.Delete(ctx, "k")) // evicted from memory
	// Asked for often enough that a Tiered hit would promote it.
	for range 2 {
		o, err := disk.Get(ctx, "k")
		require.NoError(t, err)
		o.Close()
	}
	mustPurge(t, ix, Request{URLs: []string{"http://a.test/x"}})
	clk.Advance(testCommitDelay)

	require.NoError(t, ix.Sweep(ctx))
	assert.False(t, stored(t, mem, "k"), "memory")
	assert.False(t, stored(t, disk, "k"), "disk")
	assert.Zero(t, ix.Len())
}

func TestBansWhoseObjectsCouldNotBeDeletedStay(t *testing.T) {
	clk := newClock()
	tier := &walkHookTier{Memory: newMemory(t), failDelete: errors.New("disk on fire")}
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	store(t, tier, storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)})
	mustPurge(t, ix, Request{All: true})
	clk.Advance(testCommitDelay)

	err := ix.Sweep(context.Background())
	require.ErrorContains(t, err, "1 objects could not be removed; the last error: disk on fire")
	assert.Equal(t, 1, ix.Len())

	tier.failDelete = nil
	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, "k"))
	assert.Zero(t, ix.Len())
}

func TestFailedWalkRetiresNothing(t *testing.T) {
	clk := newClock()
	tier := &walkHookTier{Memory: newMemory(t), failWalk: errors.New("index not loaded")}
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	mustPurge(t, ix, Request{All: true})
	clk.Advance(testCommitDelay)
	require.ErrorContains(t, ix.Sweep(context.Background()), "index not loaded")
	assert.Equal(t, 1, ix.Len())
}

func TestWalkThatSkippedObjectsRetiresNothing(t *testing.T) {
	clk := newClock()
	// Lists what it can, then says it could not read everything (as
	// storage.Disk does for files it cannot open).
	tier := &walkHookTier{Memory: newMemory(t), walkErr: errors.New("2 files unreadable")}
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: testCommitDelay})
	store(t, tier, storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Hour)})
	mustPurge(t, ix, Request{URLs: []string{"http://a.test/x"}})
	clk.Advance(testCommitDelay)

	require.ErrorContains(t, ix.Sweep(context.Background()), "2 files unreadable")
	assert.False(t, stored(t, tier, "k"), "what the walk listed is deleted")
	assert.Equal(t, 1, ix.Len(), "an object the walk skipped may still be stored")

	tier.walkErr = nil
	require.NoError(t, ix.Sweep(context.Background()))
	assert.Zero(t, ix.Len())
}

func TestRetiredSubsumedBansLeaveOneEntry(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{CommitDelay: testCommitDelay})
	for range 3 {
		mustPurge(t, ix, Request{Tags: []string{"t"}})
		clk.Advance(time.Second)
	}
	assert.Equal(t, 1, ix.Len(), "newer bans on one target subsume older ones")
	ix.mu.Lock()
	assert.Len(t, ix.records, 1, "only the newest record is held")
	ix.mu.Unlock()
}

func TestRunSweepsAndRetires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tier := newMemory(t)
		ix := newIndex(t, nil, Config{Tier: tier, Interval: time.Second, CommitDelay: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- ix.Run(ctx) }()

		store(t, tier, storage.Meta{Key: "k", URL: "http://a.test/x", ResponseTime: time.Now().Add(-time.Hour)})
		synctest.Wait()
		mustPurge(t, ix, Request{URLs: []string{"http://a.test/x"}})
		synctest.Wait() // Run sweeps at once, then sleeps
		assert.False(t, stored(t, tier, "k"), "swept as soon as the ban arrived")
		assert.Equal(t, 1, ix.Len())

		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Zero(t, ix.Len(), "retired CommitDelay later")

		assert.Error(t, ix.Run(ctx), "a second Run")
		cancel()
		assert.NoError(t, <-done)
	})
}

// slowTier takes walkTime to walk, and notes when each walk starts.
type slowTier struct {
	*storage.Memory
	walkTime time.Duration
	starts   []time.Time
}

func (s *slowTier) Walk(ctx context.Context, fn func(*storage.Meta) error) error {
	s.starts = append(s.starts, time.Now())
	time.Sleep(s.walkTime)
	return s.Memory.Walk(ctx, fn)
}

func TestRunRestsAsLongAsItWalked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		tier := &slowTier{Memory: newMemory(t), walkTime: 10 * time.Second}
		ix := newIndex(t, nil, Config{Tier: tier, Interval: time.Second, CommitDelay: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- ix.Run(ctx) }()

		mustPurge(t, ix, Request{Tags: []string{"first"}})
		time.Sleep(10 * time.Second)
		mustPurge(t, ix, Request{Tags: []string{"second"}}) // as the first walk ends
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Len(t, tier.starts, 2)
		assert.Equal(t, 20*time.Second, tier.starts[1].Sub(t0), "second walk after a rest as long as the first walk")

		cancel()
		assert.NoError(t, <-done)
	})
}

func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, Dir: t.TempDir(), CommitDelay: time.Nanosecond})
	for i := range 50 {
		store(t, tier, storage.Meta{Key: fmt.Sprint(i), URL: fmt.Sprintf("http://a.test/%d/x", i%5), Tags: []string{fmt.Sprint(i % 3)}})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			m := &storage.Meta{URL: "http://a.test/1/x", Tags: []string{"1"}}
			for {
				select {
				case <-stop:
					return
				default:
					ix.Check(m)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			assert.NoError(t, ix.Sweep(context.Background()))
			clk.Advance(time.Millisecond)
		}
	})
	for i := range 50 {
		mustPurge(t, ix, Request{Prefixes: []string{fmt.Sprintf("http://a.test/%d/", i%5)}, Tags: []string{fmt.Sprint(i % 3)}, Soft: i%2 == 0})
	}
	close(stop)
	wg.Wait()
}
