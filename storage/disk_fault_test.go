package storage_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failNth returns a fault hook failing the nth and later calls of op with
// errno, and counting every call of op in calls.
func failNth(op string, nth int64, errno syscall.Errno, calls *atomic.Int64) func(string) error {
	return func(got string) error {
		if got != op {
			return nil
		}
		if calls.Add(1) >= nth {
			return errno
		}
		return nil
	}
}

func TestDiskWriteFailureKeepsWrittenBytesReadable(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newDisk(t, storage.DiskConfig{Registerer: reg})
	var calls atomic.Int64
	storage.SetDiskFault(d, failNth("write", 3, syscall.ENOSPC, &calls))
	body := randomBody(1, 30_000)
	w, err := d.Put(context.Background(), meta("k", int64(len(body))))
	require.NoError(t, err)
	defer w.Close()
	for i := range 2 {
		_, err := w.Write(body[i*10_000 : (i+1)*10_000])
		require.NoError(t, err)
	}
	_, err = w.Write(body[20_000:])
	require.ErrorIs(t, err, syscall.ENOSPC, "Write on a full disk")
	_, err = w.Write(body[20_000:])
	require.ErrorIs(t, err, syscall.ENOSPC, "the error sticks")

	got := make([]byte, len(body))
	n, err := w.ReadAt(got, 0)
	assert.Equal(t, 20_000, n, "bytes readable after the failed Write")
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, body[:20_000], got[:n])

	assert.ErrorIs(t, w.Commit(), syscall.ENOSPC, "Commit after a failed Write")
	wantMiss(t, d, "k")
	n, _ = w.ReadAt(got, 0)
	assert.Equal(t, 20_000, n, "bytes readable after the failed Commit")
	require.NoError(t, w.Close())
	assert.Equal(t, 1.0, counter(t, reg, "outpost_disk_errors_total", "write"))
	assertNoTempFiles(t, d)
}

func TestDiskCommitFailurePublishesNothing(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newDisk(t, storage.DiskConfig{Registerer: reg})
	store(t, d, meta("k", 3), []byte("old"))
	var calls atomic.Int64
	storage.SetDiskFault(d, failNth("commit", 1, syscall.EIO, &calls))
	w, err := d.Put(context.Background(), meta("k", 3))
	require.NoError(t, err)
	defer w.Close()
	w.Write([]byte("new"))
	assert.ErrorIs(t, w.Commit(), syscall.EIO)
	storage.SetDiskFault(d, nil)
	assert.Equal(t, "old", string(mustGetBody(t, d, "k")), "the object a failed commit would have replaced")
	assert.Equal(t, 1.0, counter(t, reg, "outpost_disk_errors_total", "commit"))
	assertNoTempFiles(t, d)
}

func TestDiskReadFailureIsAnError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newDisk(t, storage.DiskConfig{Registerer: reg})
	store(t, d, meta("k", 3), []byte("abc"))
	var calls atomic.Int64
	storage.SetDiskFault(d, failNth("read", 1, syscall.EIO, &calls))
	_, err := d.Get(context.Background(), "k")
	assert.ErrorIs(t, err, syscall.EIO)
	assert.NotErrorIs(t, err, storage.ErrNotFound)
	assert.Equal(t, 1.0, counter(t, reg, "outpost_disk_errors_total", "read"))
	storage.SetDiskFault(d, nil)
	assert.Equal(t, "abc", string(mustGetBody(t, d, "k")), "an I/O error does not drop the object")
}

func TestDiskSurvivesRemovedDirectory(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, storage.DiskConfig{})
	store(t, d, meta("k", 3), []byte("abc"))
	require.NoError(t, os.RemoveAll(filepath.Join(storage.DiskDir(d), "objects")))
	require.NoError(t, os.RemoveAll(filepath.Join(storage.DiskDir(d), "tmp")))

	wantMiss(t, d, "k")
	assert.Zero(t, d.Stats().Objects, "index entry of a vanished file")
	require.NoError(t, d.Delete(ctx, "k"))
	assert.ErrorIs(t, d.Update(ctx, meta("k", 3)), storage.ErrNotFound)
	store(t, d, meta("k2", 3), []byte("xyz")) // recreates what it needs
	assert.Equal(t, "xyz", string(mustGetBody(t, d, "k2")))
}

func TestDiskReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores permissions; the injected faults above cover this")
	}
	d := newDisk(t, storage.DiskConfig{})
	store(t, d, meta("k", 3), []byte("abc"))
	tmp := filepath.Join(storage.DiskDir(d), "tmp")
	require.NoError(t, os.Chmod(tmp, 0o500))
	t.Cleanup(func() { os.Chmod(tmp, 0o700) })
	_, err := d.Put(context.Background(), meta("k2", 3))
	assert.ErrorIs(t, err, os.ErrPermission)
	assert.Equal(t, "abc", string(mustGetBody(t, d, "k")), "reads go on")
}

func assertNoTempFiles(t *testing.T, d *storage.Disk) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(storage.DiskDir(d), "tmp"))
	require.NoError(t, err)
	assert.Empty(t, entries, "temporary files left")
}

// TestDiskWalkReportsUnreadableFiles fails the read of one file in a walk.
// Walk used to skip such a file and report a complete walk, so a purge
// sweeper retired bans while an object they matched stayed servable.
func TestDiskWalkReportsUnreadableFiles(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	for _, k := range []string{"a", "b", "c"} {
		store(t, d, meta(k, 3), []byte("abc"))
	}
	var reads atomic.Int64
	storage.SetDiskFault(d, func(op string) error {
		if op == "read" && reads.Add(1) == 2 {
			return syscall.EMFILE
		}
		return nil
	})
	var seen []string
	err := d.Walk(context.Background(), func(m *storage.Meta) error {
		seen = append(seen, m.Key)
		return nil
	})
	assert.ErrorIs(t, err, syscall.EMFILE, "Walk with a file it could not read")
	assert.Len(t, seen, 2, "objects walked past the unreadable one")
}

// TestDiskWalkSkipsDeletedAndCorruptFiles checks the two cases Walk may
// skip without an error, as neither object can be served: a file deleted
// behind the index, and a corrupt file (which it drops).
func TestDiskWalkSkipsDeletedAndCorruptFiles(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	for _, k := range []string{"deleted", "corrupt", "fine"} {
		store(t, d, meta(k, 3), []byte("abc"))
	}
	require.NoError(t, os.Remove(storage.DiskPath(d, "deleted")))
	require.NoError(t, os.Truncate(storage.DiskPath(d, "corrupt"), 100))
	var seen []string
	require.NoError(t, d.Walk(context.Background(), func(m *storage.Meta) error {
		seen = append(seen, m.Key)
		return nil
	}))
	assert.Equal(t, []string{"fine"}, seen)
	_, err := os.Stat(storage.DiskPath(d, "corrupt"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "corrupt file after the walk")
}

// TestDiskDeleteFailureKeepsObjectIndexed fails the unlink of a Delete.
// Delete used to drop the index entry first, leaving a file that Walk no
// longer listed (so purges could not reach it) but Get still served.
func TestDiskDeleteFailureKeepsObjectIndexed(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, storage.DiskConfig{})
	store(t, d, meta("k", 3), []byte("abc"))
	var calls atomic.Int64
	storage.SetDiskFault(d, failNth("delete", 1, syscall.EIO, &calls))
	assert.ErrorIs(t, d.Delete(ctx, "k"), syscall.EIO)
	assert.True(t, storage.DiskIndexed(d, "k"), "index entry of a file Delete could not remove")
	assert.Equal(t, []string{"k"}, walkKeys(t, d), "objects walked after the failed Delete")

	storage.SetDiskFault(d, nil)
	require.NoError(t, d.Delete(ctx, "k"))
	assert.Empty(t, walkKeys(t, d), "objects walked after Delete")
	wantMiss(t, d, "k")
}

// TestDiskDoesNotServeFileMissingFromIndex puts back the file of a deleted
// object, as a Delete that failed to unlink it used to leave it. Get used
// to serve such a file though Walk could not list it; once the index is
// loaded it is a miss, and the file is removed.
func TestDiskDoesNotServeFileMissingFromIndex(t *testing.T) {
	ctx := context.Background()
	d := newDisk(t, storage.DiskConfig{})
	store(t, d, meta("k", 3), []byte("abc"))
	path := storage.DiskPath(d, "k")
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, d.Delete(ctx, "k"))
	require.NoError(t, os.WriteFile(path, file, 0o600))

	wantMiss(t, d, "k")
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the file outside the index after a Get")
	assert.ErrorIs(t, d.Update(ctx, meta("k", 3)), storage.ErrNotFound, "Update of a file outside the index")
}

// walkKeys returns the keys Walk reports, sorted.
func walkKeys(t *testing.T, w storage.Walker) []string {
	t.Helper()
	var keys []string
	require.NoError(t, w.Walk(context.Background(), func(m *storage.Meta) error {
		keys = append(keys, m.Key)
		return nil
	}))
	slices.Sort(keys)
	return keys
}
