package storage_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// onDisk returns the number of object files under d's directory and the
// space they take in blocks of block bytes.
func onDisk(t *testing.T, d *storage.Disk, block int64) (files int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(storage.DiskDir(d), "objects"), func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		files++
		bytes += (fi.Size() + block - 1) / block * block
		return nil
	})
	require.NoError(t, err)
	return files, bytes
}

func TestDiskKeepsBudgetInBlocks(t *testing.T) {
	tests := []struct {
		name      string
		giveBlock int64
		giveSize  int
		wantFit   int // objects of giveSize that fit 1 MiB, header included
	}{
		{"one byte takes a block", 4096, 1, 256},
		{"a block's worth spills into a second", 4096, 4096, 128},
		{"larger blocks", 65536, 1000, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const budget = 1 << 20
			d := newDisk(t, storage.DiskConfig{MaxBytes: budget, BlockSize: tt.giveBlock})
			body := randomBody(1, tt.giveSize)
			for i := range 3 * tt.wantFit {
				store(t, d, meta(keyN(i), int64(len(body))), body)
				require.LessOrEqual(t, d.Stats().Bytes, int64(budget), "after %d objects", i+1)
			}
			st := d.Stats()
			assert.Equal(t, tt.wantFit, st.Objects, "objects held")
			files, bytes := onDisk(t, d, tt.giveBlock)
			assert.Equal(t, st.Objects, files, "files on disk")
			assert.Equal(t, st.Bytes, bytes, "bytes on disk, in blocks")
		})
	}
}

// TestDiskScanResistance hits a working set, then stores a scan of objects
// each fetched once, five times the budget, with no hit on the working set
// meanwhile (which LRU or FIFO would evict in the first sixth of the scan);
// the working set survives. The
// fetch of a one-hit object is its Put (the request that missed reads the
// body as it is written), so the scan does no Get.
func TestDiskScanResistance(t *testing.T) {
	ctx := context.Background()
	const size = 8 << 10
	d := newDisk(t, storage.DiskConfig{MaxBytes: 4 << 20, BlockSize: 4096}) // about 340 objects
	body := randomBody(1, size)
	const working = 60
	for i := range working {
		store(t, d, meta(keyN(i), size), body)
	}
	hitAll := func() {
		for i := range working {
			o, err := d.Get(ctx, keyN(i))
			require.NoError(t, err, "working-set object %d", i)
			o.Close()
		}
	}
	hitAll()
	hitAll()
	for s := range 5 * 340 {
		key := keyN(100_000 + s)
		store(t, d, meta(key, size), body)
	}
	for i := range working {
		o, err := d.Get(ctx, keyN(i))
		if assert.NoError(t, err, "working-set object %d evicted by the scan", i) {
			o.Close()
		}
	}
	assert.LessOrEqual(t, d.Stats().Bytes, int64(4<<20))
}

func TestDiskRestartOverBudgetEvictsOldest(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir, MaxBytes: 1 << 20, BlockSize: 4096})
	for i := range 100 {
		store(t, d, meta(keyN(i), 4000), randomBody(uint64(i), 4000))
	}
	require.NoError(t, d.Close())
	d = newDisk(t, storage.DiskConfig{Dir: dir, MaxBytes: 400 << 10, BlockSize: 4096})
	assert.Equal(t, 50, d.Stats().Objects, "objects kept in the smaller budget")
	for i := range 100 {
		if i < 50 {
			wantMiss(t, d, keyN(i))
		} else {
			assert.Equal(t, randomBody(uint64(i), 4000), mustGetBody(t, d, keyN(i)), "object %d", i)
		}
	}
	files, _ := onDisk(t, d, 4096)
	assert.Equal(t, 50, files, "files left on disk")
}

// TestDiskEvictionUnlinkFailureKeepsFileWalkable fails the unlinks of the
// files evicted to make room. The index used to forget them anyway, so a
// purge walking the tier never saw them and a restart served them again.
// Such files are not served, still walked, and gone once purged.
func TestDiskEvictionUnlinkFailureKeepsFileWalkable(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, storage.DiskConfig{MaxBytes: 64 << 10, BlockSize: 4096}) // 8 files of 8 KiB
	var calls atomic.Int64
	storage.SetDiskFault(d, failNth("delete", 1, syscall.EIO, &calls))
	var all []string
	for i := range 16 {
		store(t, d, meta(keyN(i), 4000), randomBody(uint64(i), 4000))
		all = append(all, keyN(i))
	}
	slices.Sort(all)
	require.Positive(t, calls.Load(), "evictions that tried to unlink")
	assert.Equal(t, 8, d.Stats().Objects, "objects indexed")
	assert.Equal(t, all, walkKeys(t, d), "objects walked, evicted ones included")
	served := 0
	for i := range 16 {
		if o, err := d.Get(ctx, keyN(i)); err == nil {
			o.Close()
			served++
		}
	}
	assert.Equal(t, 8, served, "objects served")

	storage.SetDiskFault(d, nil)
	for _, k := range walkKeys(t, d) { // a purge of everything
		require.NoError(t, d.Delete(ctx, k))
	}
	files, _ := onDisk(t, d, 4096)
	assert.Zero(t, files, "files left after purging every walked object")
}

// TestDiskRefusesObjectLargerThanBudget stores an object whose file, header
// and chunk table included, is larger than the whole budget. Commit used to
// succeed and the object to evict itself at once.
func TestDiskRefusesObjectLargerThanBudget(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, storage.DiskConfig{MaxBytes: 1 << 20, MaxObjectSize: 1 << 20, BlockSize: 4096})
	_, err := d.Put(ctx, meta("declared", 1<<20))
	assert.ErrorIs(t, err, storage.ErrTooLarge, "Put of a body the size of the budget")

	w, err := d.Put(ctx, meta("chunked", -1))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(make([]byte, 1<<20))
	assert.ErrorIs(t, err, storage.ErrTooLarge, "Write of a body of unknown size past the budget")

	fits := randomBody(1, 1<<20-8<<10)
	store(t, d, meta("fits", int64(len(fits))), fits)
	assert.Equal(t, fits, mustGetBody(t, d, "fits"), "a body whose file fits the budget")
}
