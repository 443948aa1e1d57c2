package storage_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiskSnapshotAfterCleanClose(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir})
	for i := range 20 {
		store(t, d, meta(keyN(i), 100), randomBody(uint64(i), 100))
	}
	require.NoError(t, d.Close())
	exists, clean := storage.SnapshotState(dir)
	require.True(t, exists && clean, "clean snapshot after Close")

	d = newDisk(t, storage.DiskConfig{Dir: dir})
	<-storage.DiskSwept(d)
	exists, clean = storage.SnapshotState(dir)
	assert.True(t, exists, "periodic snapshot after loading")
	assert.False(t, clean, "the running tier's snapshot is marked clean")
	assert.NoFileExists(t, filepath.Join(dir, "index.loading"), "claimed snapshot left after loading")
	assert.Equal(t, 20, d.Stats().Objects)
	for i := range 20 {
		assert.Equal(t, randomBody(uint64(i), 100), mustGetBody(t, d, keyN(i)))
	}
}

// TestDiskSnapshotCheckedAgainstFiles changes the directory behind a
// snapshot's back: a file it lists is gone, a file it lists is replaced by
// a longer one, a file it does not list is there. The index follows the
// files, with the right charges.
func TestDiskSnapshotCheckedAgainstFiles(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(map[bool]string{true: "clean", false: "after a crash"}[clean], func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, storage.DiskConfig{Dir: dir})
			store(t, d, meta("listed", 100), randomBody(1, 100))
			store(t, d, meta("removed", 100), randomBody(2, 100))
			store(t, d, meta("replaced", 100), randomBody(3, 100))
			removed := storage.DiskPath(d, "removed")
			require.NoError(t, d.Close())
			if !clean {
				require.NoError(t, storage.MarkSnapshotUnclean(dir))
			}

			other := newDisk(t, storage.DiskConfig{})
			store(t, other, meta("unlisted", 5000), randomBody(4, 5000))
			store(t, other, meta("replaced", 9000), randomBody(5, 9000))
			for _, key := range []string{"unlisted", "replaced"} {
				rel, err := filepath.Rel(storage.DiskDir(other), storage.DiskPath(other, key))
				require.NoError(t, err)
				require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o700))
				require.NoError(t, os.Rename(storage.DiskPath(other, key), filepath.Join(dir, rel)))
			}
			require.NoError(t, os.Remove(removed))

			d = newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
			assert.Equal(t, 3, d.Stats().Objects)
			assert.Equal(t, int64(4096+8192+12288), d.Stats().Bytes, "one block for listed, two for unlisted, three for replaced")
			assert.Equal(t, randomBody(4, 5000), mustGetBody(t, d, "unlisted"))
			assert.Equal(t, randomBody(5, 9000), mustGetBody(t, d, "replaced"))
			assert.Equal(t, randomBody(1, 100), mustGetBody(t, d, "listed"))
			wantMiss(t, d, "removed")
		})
	}
}

// TestDiskPeriodicSnapshotAfterCrash loads from a snapshot written while
// running, older than the files: what was written and deleted since is
// found as it is.
func TestDiskPeriodicSnapshotAfterCrash(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
	for i := range 10 {
		store(t, d, meta(keyN(i), 100), randomBody(uint64(i), 100))
	}
	require.NoError(t, d.Close())
	d = newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
	<-storage.DiskSwept(d) // the periodic snapshot is written
	stale, err := os.ReadFile(filepath.Join(dir, "index"))
	require.NoError(t, err)
	for i := 10; i < 15; i++ {
		store(t, d, meta(keyN(i), 5000), randomBody(uint64(i), 5000))
	}
	require.NoError(t, d.Delete(t.Context(), keyN(0)))
	store(t, d, meta(keyN(1), 5000), randomBody(100, 5000)) // replaced
	require.NoError(t, d.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index"), stale, 0o600)) // as a crash leaves it

	d = newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
	assert.Equal(t, 14, d.Stats().Objects)
	assert.Equal(t, int64(8*4096+6*8192), d.Stats().Bytes)
	wantMiss(t, d, keyN(0))
	assert.Equal(t, randomBody(100, 5000), mustGetBody(t, d, keyN(1)))
	for i := 2; i < 15; i++ {
		n := 100
		if i >= 10 {
			n = 5000
		}
		assert.Equal(t, randomBody(uint64(i), n), mustGetBody(t, d, keyN(i)), "object %d", i)
	}
}

func TestDiskSnapshotDamagedOrStale(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"flipped byte", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "index"), 20) }},
		{"truncated", func(t *testing.T, dir string) { require.NoError(t, os.Truncate(filepath.Join(dir, "index"), 30)) }},
		{"garbage", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "index"), []byte("garbage"), 0o600))
		}},
		{"left by a start that did not finish loading", func(t *testing.T, dir string) {
			require.NoError(t, os.Rename(filepath.Join(dir, "index"), filepath.Join(dir, "index.loading")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, storage.DiskConfig{Dir: dir})
			for i := range 5 {
				store(t, d, meta(keyN(i), 10), randomBody(uint64(i), 10))
			}
			require.NoError(t, d.Close())
			tt.damage(t, dir)
			d = newDisk(t, storage.DiskConfig{Dir: dir})
			<-storage.DiskSwept(d)
			assert.Equal(t, 5, d.Stats().Objects, "objects found without a usable snapshot")
			assert.NoFileExists(t, filepath.Join(dir, "index.loading"))
			for i := range 5 {
				assert.Equal(t, randomBody(uint64(i), 10), mustGetBody(t, d, keyN(i)))
			}
		})
	}
}

// TestDiskSweepCorrectsCharges loads a snapshot that has the right inode
// but the wrong length for a file; after a crash the sweep corrects it.
func TestDiskSweepCorrectsCharges(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
	store(t, d, meta("k", 9000), randomBody(1, 9000))
	require.NoError(t, d.Close())
	require.NoError(t, storage.SetSnapshotSize(dir, "k", 100))
	d = newDisk(t, storage.DiskConfig{Dir: dir, BlockSize: 4096})
	<-storage.DiskSwept(d)
	assert.Equal(t, int64(12288), d.Stats().Bytes, "charge after the sweep")
}
