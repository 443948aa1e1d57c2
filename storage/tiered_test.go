package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/outpost-cdn/outpost/storage/storagetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tiers is a Tiered with its two tiers, for tests that look into each.
type tiers struct {
	*storage.Tiered
	mem  *storage.Memory
	disk *storage.Disk
	dir  string
}

// newTiered builds a Tiered over a new Memory and a Disk in dir (a new
// temporary directory if empty), closed when the test ends. Unless cfg
// says otherwise, every object gets a disk copy (DiskMinUses 1).
func newTiered(t testing.TB, dir string, mcfg storage.MemoryConfig, cfg storage.TieredConfig) *tiers {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if cfg.DiskMinUses == 0 {
		cfg.DiskMinUses = 1
	}
	if mcfg.MaxBytes == 0 {
		mcfg.MaxBytes = 64 << 20
	}
	mem := newMemory(t, mcfg)
	disk := newDisk(t, storage.DiskConfig{Dir: dir, MaxBytes: 256 << 20})
	tt, err := storage.NewTiered(mem, disk, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { tt.Close() })
	return &tiers{Tiered: tt, mem: mem, disk: disk, dir: dir}
}

func TestTieredConformance(t *testing.T) {
	// A small memory limit sends the suite's larger bodies to disk only.
	mcfg := storage.MemoryConfig{MaxBytes: 8 << 20, MaxObjectSize: 200 << 10}
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Tier { return newTiered(t, "", mcfg, storage.TieredConfig{}) },
		Reopen: func(t *testing.T, tier storage.Tier) storage.Tier {
			old := tier.(*tiers)
			require.NoError(t, old.Tiered.Close()) // writes what is queued for disk
			require.NoError(t, old.disk.Close())
			old.mem.Close()
			return newTiered(t, old.dir, mcfg, storage.TieredConfig{})
		},
	})
}

func TestNewTieredConfigErrors(t *testing.T) {
	mem := newMemory(t, storage.MemoryConfig{})
	disk := newDisk(t, storage.DiskConfig{})
	tests := []struct {
		name    string
		give    storage.TieredConfig
		wantErr string
	}{
		{"negative promote size", storage.TieredConfig{PromoteMaxSize: -1}, "PromoteMaxSize -1 is negative"},
		{"negative promote hits", storage.TieredConfig{PromoteMinHits: -1}, "PromoteMinHits -1 is negative"},
		{"negative retry", storage.TieredConfig{RetryInterval: -1}, "RetryInterval -1ns is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storage.NewTiered(mem, disk, tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	_, err := storage.NewTiered(nil, disk, storage.TieredConfig{})
	assert.Error(t, err, "nil memory tier")
}

func TestTieredPlacement(t *testing.T) {
	tests := []struct {
		name     string
		giveSize int64 // declared size; -1 unknown
		bodySize int
		wantMem  bool
	}{
		{"small goes to both", 1000, 1000, true},
		{"over the memory limit goes to disk only", 100 << 10, 100 << 10, false},
		{"unknown length goes to disk only", -1, 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTiered(t, "", storage.MemoryConfig{MaxObjectSize: 64 << 10}, storage.TieredConfig{})
			body := randomBody(1, tt.bodySize)
			store(t, ts, meta("k", tt.giveSize), body)
			require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
			assert.Equal(t, body, mustGetBody(t, ts.disk, "k"), "disk copy")
			_, err := ts.mem.Get(context.Background(), "k")
			assert.Equal(t, tt.wantMem, err == nil, "in memory: Get = %v", err)
			assert.Equal(t, body, mustGetBody(t, ts, "k"))
		})
	}
}

func TestTieredPromotesPopularDiskHits(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{PromoteMaxSize: 1 << 20})
	small, large := randomBody(1, 100<<10), randomBody(2, 2<<20)
	store(t, ts.disk, meta("small", int64(len(small))), small)
	store(t, ts.disk, meta("large", int64(len(large))), large)

	assert.Equal(t, small, mustGetBody(t, ts, "small"), "first hit")
	_, err := ts.mem.Get(ctx, "small")
	assert.ErrorIs(t, err, storage.ErrNotFound, "promoted on its first hit")
	assert.Equal(t, small, mustGetBody(t, ts, "small"), "second hit")
	o, err := ts.mem.Get(ctx, "small")
	require.NoError(t, err, "not promoted on its second hit")
	assert.Equal(t, small, readBody(t, o), "promoted body")

	for range 3 {
		assert.Equal(t, large, mustGetBody(t, ts, "large"))
	}
	_, err = ts.mem.Get(ctx, "large")
	assert.ErrorIs(t, err, storage.ErrNotFound, "a body over PromoteMaxSize was promoted")
}

func TestTieredReplacementHidesOldVersion(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{MaxObjectSize: 64 << 10}, storage.TieredConfig{})
	v1, v2 := randomBody(1, 1000), randomBody(2, 200<<10)
	store(t, ts, meta("k", int64(len(v1))), v1)
	store(t, ts, meta("k", int64(len(v2))), v2) // too large for memory
	assert.Equal(t, v2, mustGetBody(t, ts, "k"), "Get after a replacement that went to disk only")
}

func TestTieredUpdateAndDeleteReachBothTiers(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	for _, queued := range []bool{true, false} { // an Update before or after the disk copy is written
		store(t, ts, meta("k", 10), []byte("0123456789"))
		if !queued {
			require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
		}
		m := meta("k", 10)
		m.Header.Set("Etag", `"v2"`)
		require.NoError(t, ts.Update(ctx, m))
		require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
		for _, tier := range []storage.Tier{ts.mem, ts.disk} {
			o, err := tier.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, `"v2"`, o.Meta().Header.Get("Etag"), "%T after Update (queued: %v)", tier, queued)
			assert.Equal(t, []byte("0123456789"), readBody(t, o), "%T after Update (queued: %v)", tier, queued)
			o.Close()
		}
	}
	// On disk only, Update still succeeds.
	store(t, ts.disk, meta("d", 1), []byte("x"))
	require.NoError(t, ts.Update(ctx, meta("d", 1)))
	assert.ErrorIs(t, ts.Update(ctx, meta("missing", 1)), storage.ErrNotFound)

	require.NoError(t, ts.Delete(ctx, "k"))
	for _, tier := range []storage.Tier{ts.mem, ts.disk, ts} {
		wantMiss(t, tier, "k")
	}
}

func TestTieredWalkReportsEachKeyOnce(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{MaxObjectSize: 64 << 10}, storage.TieredConfig{})
	store(t, ts, meta("both", 10), make([]byte, 10))
	store(t, ts, meta("disk-only", 100<<10), make([]byte, 100<<10))
	store(t, ts.mem, meta("memory-only", 10), make([]byte, 10))
	var got []string
	require.NoError(t, ts.Walk(context.Background(), func(m *storage.Meta) error {
		got = append(got, m.Key)
		return nil
	}))
	slices.Sort(got)
	assert.Equal(t, []string{"both", "disk-only", "memory-only"}, got)

	stop := errors.New("stop")
	assert.ErrorIs(t, ts.Walk(context.Background(), func(*storage.Meta) error { return stop }), stop)
}

func TestTieredReady(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	select {
	case <-ts.Ready():
	default:
		t.Fatal("Tiered not ready after its disk tier is")
	}
	assert.True(t, ts.Ready() == ts.disk.Ready(), "Tiered.Ready is the disk's")
}

// TestTieredFollowerReadsAcrossSides follows a tee'd write and checks that
// the follower reads the same bytes whichever side serves it.
func TestTieredFollowerReadsAcrossSides(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	body := randomBody(5, 50_000)
	w, err := ts.Put(context.Background(), meta("f", int64(len(body))))
	require.NoError(t, err)
	defer w.Close()
	for off := 0; off < len(body); off += 10_000 {
		_, err := w.Write(body[off : off+10_000])
		require.NoError(t, err)
		got := make([]byte, off+10_000)
		n, err := w.ReadAt(got, 0)
		require.NoError(t, err)
		require.True(t, bytes.Equal(body[:n], got), "prefix of %d bytes", off+10_000)
	}
	require.NoError(t, w.Commit())
}

// BenchmarkTieredGet measures a memory hit through Tiered (which also
// counts the hit for the disk's eviction policy) and a disk hit.
func BenchmarkTieredGet(b *testing.B) {
	ctx := context.Background()
	ts := newTiered(b, "", storage.MemoryConfig{MaxObjectSize: 64 << 10}, storage.TieredConfig{})
	store(b, ts, meta("small", 4096), randomBody(1, 4096))
	store(b, ts, meta("large", 1<<20), randomBody(2, 1<<20))
	require.NoError(b, storage.FlushWriteBehind(ts.Tiered))
	for _, key := range []string{"small", "large"} {
		b.Run(key, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				o, err := ts.Get(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				o.Close()
			}
		})
	}
}

// TestTieredPromotionDoesNotResurrectPurgedObject deletes an object while
// a disk hit copies it into memory. The promotion used to commit anyway,
// bringing the purged object back.
func TestTieredPromotionDoesNotResurrectPurgedObject(t *testing.T) {
	ctx := context.Background()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	store(t, ts.disk, meta("k", 1000), randomBody(1, 1000))
	mustGetBody(t, ts, "k") // the first hit: not promoted yet
	purged := false
	storage.SetPromoteHook(ts.Tiered, func() {
		if !purged {
			purged = true
			require.NoError(t, ts.Delete(ctx, "k"))
		}
	})
	mustGetBody(t, ts, "k") // the second hit promotes, racing the purge
	require.True(t, purged, "the second hit did not promote")
	wantMiss(t, ts.mem, "k")
	wantMiss(t, ts, "k")
}

// TestTieredPromotionDoesNotOverwriteNewerVersion stores a new version
// while a disk hit copies the old one into memory. The promotion used to
// commit anyway, serving the old version from memory over the new one.
func TestTieredPromotionDoesNotOverwriteNewerVersion(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	v1, v2 := randomBody(1, 1000), randomBody(2, 2000)
	store(t, ts.disk, meta("k", int64(len(v1))), v1)
	mustGetBody(t, ts, "k")
	replaced := false
	storage.SetPromoteHook(ts.Tiered, func() {
		if !replaced {
			replaced = true
			store(t, ts, meta("k", int64(len(v2))), v2)
		}
	})
	assert.Equal(t, v1, mustGetBody(t, ts, "k"), "the hit that read the old version")
	require.True(t, replaced, "the second hit did not promote")
	assert.Equal(t, v2, mustGetBody(t, ts.mem, "k"), "in memory after the promotion")
	assert.Equal(t, v2, mustGetBody(t, ts, "k"))
}

// TestTieredSampledMemoryHitsFeedDiskPolicy checks that memory hits, of
// which Tiered reports a sample to the disk, still tell the disk's
// eviction policy that an object is popular.
func TestTieredSampledMemoryHitsFeedDiskPolicy(t *testing.T) {
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{})
	store(t, ts, meta("k", 10), make([]byte, 10))
	require.NoError(t, storage.FlushWriteBehind(ts.Tiered))
	require.Zero(t, storage.DiskFreq(ts.disk, "k"))
	for range 400 {
		mustGetBody(t, ts, "k")
	}
	assert.Equal(t, 3, storage.DiskFreq(ts.disk, "k"), "disk hit count after 400 memory hits")
}

// TestTieredPromotionMetricCountsOnlyStoredCopies promotes a disk hit
// into memory, then one that the memory tier does not keep. The metric used
// to count every promotion whose Commit returned, though the memory tier's
// admission policy may drop the object. (Which objects the policy drops
// depends on hit counts it gathers in the background, and under the race
// detector not at all; a closed memory tier drops every object.)
func TestTieredPromotionMetricCountsOnlyStoredCopies(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ts := newTiered(t, "", storage.MemoryConfig{}, storage.TieredConfig{Registerer: reg})
	promotions := func() float64 { return counter(t, reg, "outpost_tiered_promotions_total", "") }
	for _, k := range []string{"first", "second"} {
		store(t, ts.disk, meta(k, 1000), randomBody(1, 1000))
	}
	for range 2 {
		mustGetBody(t, ts, "first")
	}
	assert.Equal(t, 1.0, promotions(), "promotions into memory")

	require.NoError(t, ts.mem.Close())
	for range 2 {
		mustGetBody(t, ts, "second")
	}
	assert.Equal(t, 1.0, promotions(), "promotions after one the memory tier dropped")
}

// BenchmarkTieredMemoryHit measures hits on a working set held in memory,
// from every core at once, through Memory alone and through Tiered (which
// reports a sample of them to the disk's eviction policy).
func BenchmarkTieredMemoryHit(b *testing.B) {
	for _, name := range []string{"Memory", "Tiered"} {
		b.Run(name, func(b *testing.B) {
			ts := newTiered(b, "", storage.MemoryConfig{}, storage.TieredConfig{})
			var tier storage.Tier = ts.mem
			if name == "Tiered" {
				tier = ts.Tiered
			}
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = fmt.Sprintf("https://example.com/assets/img/%d.png?v=abcdef", i)
				store(b, tier, meta(keys[i], 100), make([]byte, 100))
			}
			require.NoError(b, storage.FlushWriteBehind(ts.Tiered))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					o, err := tier.Get(ctx, keys[i%len(keys)])
					if err != nil {
						b.Fatal(err)
					}
					o.Close()
				}
			})
		})
	}
}
