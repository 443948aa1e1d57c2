package storage_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
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
