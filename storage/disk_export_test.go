package storage

import (
	"encoding/binary"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// Test hooks for package storage_test, compiled only into tests.

// DiskDir returns the directory d was opened on.
func DiskDir(d *Disk) string { return d.dir }

// DiskPath returns the file that holds key's object.
func DiskPath(d *Disk, key string) string { return d.path(keyID(key)) }

// DiskSwept returns a channel closed once d's loader goroutine has finished
// sweeping the headers of the files it loaded.
func DiskSwept(d *Disk) <-chan struct{} { return d.swept }

// SetDiskFault makes d call fail before each file operation op (create,
// write, commit, read, update, delete) and fail it with the error fail
// returns, if any. Nil removes the hook.
func SetDiskFault(d *Disk, fail func(op string) error) {
	if fail == nil {
		d.fault.Store(nil)
		return
	}
	d.fault.Store(&fail)
}

// DiskVerified reports whether the index marks key's body as verified.
func DiskVerified(d *Disk, key string) bool {
	e, _, ok := d.ix.lookup(keyID(key), false)
	return ok && e.verified
}

// DiskHeaderArea returns the body offset in key's file.
func DiskHeaderArea(d *Disk, key string) int64 {
	st := &d.stripes[keyID(key)[0]]
	st.RLock()
	defer st.RUnlock()
	f, h, _, _, err := d.openFile(keyID(key), 0)
	if err != nil {
		return -1
	}
	f.Close()
	return h.area
}

// SnapshotState reports whether dir holds an index snapshot and whether it
// is marked clean.
func SnapshotState(dir string) (exists, clean bool) {
	b, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		return false, false
	}
	_, clean, err = parseSnapshot(b)
	return err == nil, clean
}

// MarkSnapshotUnclean rewrites the snapshot in dir as a periodic one, as
// a crash would leave it.
func MarkSnapshotUnclean(dir string) error {
	path := filepath.Join(dir, snapshotName)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b[6:], 0)
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	return os.WriteFile(path, b, 0o600)
}

// SetSnapshotSize records size as the length of key's file in the
// snapshot in dir and marks it not clean: the snapshot then describes the
// file's inode with a wrong length, as after an inode number was reused.
func SetSnapshotSize(dir, key string, size int64) error {
	path := filepath.Join(dir, snapshotName)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	id := keyID(key)
	for e := b[snapshotHeader : len(b)-8]; len(e) > 0; e = e[snapshotEntry:] {
		if fileID(e[:16]) == id {
			binary.LittleEndian.PutUint64(e[16:], uint64(size))
		}
	}
	binary.LittleEndian.PutUint16(b[6:], 0)
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	return os.WriteFile(path, b, 0o600)
}

// DiskIndexed reports whether d's index records key's file as an object
// (stuck files, evicted but not yet unlinked, are not).
func DiskIndexed(d *Disk, key string) bool { return d.ix.has(keyID(key)) }

// DiskFreq returns the hit count d's eviction policy holds for key, or -1
// when it holds no entry for it.
func DiskFreq(d *Disk, key string) int {
	_, freq, ok := d.ix.lookup(keyID(key), false)
	if !ok {
		return -1
	}
	return freq
}
