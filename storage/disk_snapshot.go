package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// The index snapshot spares a restart one stat(2) per file, which dominates
// loading a large directory. It lists every index entry in eviction order
// with the file's length and inode number, and is written to Dir/index
// (through a temporary file and a rename) by Close, marked clean, and every
// DiskConfig.SnapshotInterval while running, not marked.
//
// Loading never trusts the snapshot blindly: it lists every directory, and
// takes a file's length from the snapshot only when the directory entry
// carries the inode number the snapshot recorded (getdents(2) reports it
// with the name, at no cost). A file replaced since the snapshot has a new
// inode, since commits rename a new file into place, and is stat'ed like a
// file the snapshot does not know; an entry whose file is gone is skipped.
// So a snapshot of any age is safe to load from, and after a crash only the
// files written since the last periodic snapshot cost a stat. (Where the
// platform does not report inode numbers, only a clean snapshot is used.)
//
// One case escapes the inode check: a file replaced twice may get back its
// first inode number with another length, and be charged the old length. A
// start that did not follow a clean Close therefore sweeps every file it
// loaded (see disk_load.go), which corrects such charges as it goes. A
// clean snapshot is exact, and its files are not swept.
//
// NewDisk renames Dir/index to Dir/index.loading before anything can change
// the directory, so a clean mark is honoured by the start that directly
// follows the Close that wrote it and by no later one; a Dir/index.loading
// left by a start that crashed while loading is still used, as not clean.
//
// Layout (little-endian): "OPIX", version uint16 (1), flags uint16 (bit 0:
// clean), entry count uint64; then per entry the file id (16 bytes), the
// file length uint64 and the inode number uint64; then the xxhash64 of all
// that precedes it.
const (
	snapshotName    = "index"
	snapshotLoading = "index.loading"
	snapshotMagic   = "OPIX"
	snapshotVersion = 1
	snapshotClean   = 1 << 0
	snapshotHeader  = 16
	snapshotEntry   = 32
)

// snapEntry is what a snapshot says about one file.
type snapEntry struct {
	order int // position in eviction order, from 1
	size  int64
	ino   uint64
}

// claimSnapshot renames Dir/index to Dir/index.loading and reports whether
// a snapshot is there to load, and whether its clean mark may be honoured
// (not for one left by an earlier start).
func (d *Disk) claimSnapshot() (found, mayBeClean bool) {
	loading := filepath.Join(d.dir, snapshotLoading)
	err := os.Rename(filepath.Join(d.dir, snapshotName), loading)
	if err == nil {
		return true, true
	}
	if !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("claiming index snapshot", "err", err)
	}
	_, err = os.Lstat(loading)
	return err == nil, false
}

// readSnapshot reads the claimed snapshot. It returns nil, and logs why,
// when the snapshot does not verify.
func (d *Disk) readSnapshot() (snap map[fileID]snapEntry, clean bool) {
	b, err := os.ReadFile(filepath.Join(d.dir, snapshotLoading))
	if err != nil {
		d.log.Warn("reading index snapshot", "err", err)
		return nil, false
	}
	snap, clean, err = parseSnapshot(b)
	if err != nil {
		d.log.Warn("ignoring index snapshot", "err", err)
		return nil, false
	}
	return snap, clean
}

func parseSnapshot(b []byte) (map[fileID]snapEntry, bool, error) {
	if len(b) < snapshotHeader+8 || string(b[:4]) != snapshotMagic {
		return nil, false, errors.New("not an index snapshot")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != snapshotVersion {
		return nil, false, fmt.Errorf("snapshot version %d, want %d", v, snapshotVersion)
	}
	body, sum := b[:len(b)-8], binary.LittleEndian.Uint64(b[len(b)-8:])
	if xxhash.Sum64(body) != sum {
		return nil, false, errors.New("snapshot checksum mismatch")
	}
	clean := binary.LittleEndian.Uint16(b[6:])&snapshotClean != 0
	n := binary.LittleEndian.Uint64(b[8:])
	if uint64(len(body)-snapshotHeader) != n*snapshotEntry {
		return nil, false, fmt.Errorf("snapshot of %d bytes for %d entries", len(b), n)
	}
	snap := make(map[fileID]snapEntry, n)
	for i, e := 0, body[snapshotHeader:]; len(e) > 0; i, e = i+1, e[snapshotEntry:] {
		snap[fileID(e[:16])] = snapEntry{
			order: i + 1,
			size:  int64(binary.LittleEndian.Uint64(e[16:])),
			ino:   binary.LittleEndian.Uint64(e[24:]),
		}
	}
	return snap, clean, nil
}

// writeSnapshot writes the index to Dir/index. A clean snapshot is written
// by Close, with operations over; otherwise files may change while it is
// written, and the snapshot is as of the moment the index was copied (the
// index lock is held for that copy only: some 30 ms per million entries).
func (d *Disk) writeSnapshot(clean bool) error {
	d.ix.mu.Lock()
	records := make([]byte, 0, snapshotEntry*d.ix.policy.Len())
	d.ix.policy.Range(func(id fileID, e diskEntry, _ int64) bool {
		records = append(records, id[:]...)
		records = binary.LittleEndian.AppendUint64(records, uint64(e.size))
		records = binary.LittleEndian.AppendUint64(records, e.ino)
		return true
	})
	d.ix.mu.Unlock()

	var head [snapshotHeader]byte
	copy(head[:], snapshotMagic)
	binary.LittleEndian.PutUint16(head[4:], snapshotVersion)
	if clean {
		binary.LittleEndian.PutUint16(head[6:], snapshotClean)
	}
	binary.LittleEndian.PutUint64(head[8:], uint64(len(records)/snapshotEntry))
	h := xxhash.New()
	h.Write(head[:])
	h.Write(records)

	tmp := filepath.Join(d.dir, snapshotName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a successful rename, a no-op
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	bw.Write(head[:])
	bw.Write(records)
	bw.Write(binary.LittleEndian.AppendUint64(nil, h.Sum64()))
	if err := bw.Flush(); err != nil { // bufio's errors stick until Flush
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.dir, snapshotName))
}
