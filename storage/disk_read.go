package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Get returns the committed object stored under key, or ErrNotFound. A file
// that turns out corrupt is deleted and reported as ErrNotFound; other
// errors are I/O errors. The object holds an open file until Close. Once
// the index is loaded, a file it does not record (left by a deletion that
// could not unlink it) is not served but deleted.
func (d *Disk) Get(_ context.Context, key string) (Object, error) {
	o, err := d.get(key)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// get is Get returning the concrete type, which Tiered looks into.
func (d *Disk) get(key string) (*diskObject, error) {
	leave, err := d.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	id := keyID(key)
	st := &d.stripes[id[0]]
	st.RLock()
	f, h, m, ino, err := d.openFile(id, os.O_RDONLY)
	var e diskEntry
	var freq int
	indexed, orphan := false, false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.ix.remove(id) // gone from under the index: forget it
	case err == nil && m.Key != key:
		f.Close()
		err = ErrNotFound // a collision of 128-bit hashes: not ours
		if keyID(m.Key) != id {
			err = fmt.Errorf("%w: misplaced file of key %q", errCorrupt, m.Key)
		}
	case err == nil:
		e, freq, indexed = d.ix.lookup(id, true)
		// While the index loads, files are served without it. Once it is
		// loaded it lists every object (Walk reports what it lists), so a
		// file outside it is one whose deletion failed: serving it could
		// bring back an object a purge has walked past.
		orphan = !indexed && d.loaded.Load()
	}
	st.RUnlock()
	if err != nil {
		return nil, d.readFailed(id, ino, key, err)
	}
	if orphan {
		f.Close()
		st.Lock()
		d.unlinkUnindexed(id) // counted; tried again by the next Get, Delete or retry
		st.Unlock()
		return nil, ErrNotFound
	}
	o := &diskObject{d: d, f: f, id: id, ino: ino, meta: m, body: h.area, freq: freq}
	if !indexed || e.ino != ino || !e.verified {
		// Check the first chunk now, so a small object that does not verify
		// is a miss rather than a failed read.
		if o.v, err = newVerifier(o, h); err != nil {
			f.Close()
			return nil, d.readFailed(id, ino, key, err)
		}
		if err := o.v.check(0, min(h.size, 1)); err != nil {
			f.Close()
			if isCorrupt(err) {
				return nil, ErrNotFound // dropped by check
			}
			d.met.errors.WithLabelValues(opRead).Inc()
			return nil, err
		}
	}
	return o, nil
}

// touch counts a hit on key for the eviction policy without opening the
// file: Tiered reports a sample of its memory hits, so the disk keeps what
// is popular.
func (d *Disk) touch(key string) { d.ix.lookup(keyID(key), true) }

// readFailed handles a failed open or read of the file for key: missing is
// ErrNotFound, corrupt is dropped and ErrNotFound, anything else an I/O
// error, counted.
func (d *Disk) readFailed(id fileID, ino uint64, key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNotFound):
		return ErrNotFound
	case errors.Is(err, errCorrupt):
		d.drop(id, ino, err)
		return ErrNotFound
	}
	d.met.errors.WithLabelValues(opRead).Inc()
	return fmt.Errorf("disk tier: get %s: %w", key, err)
}

// openFile opens the file of id and reads and verifies its header and
// length. The caller holds the id's stripe. On error the file is closed and
// ino is the inode of what was opened, if anything.
func (d *Disk) openFile(id fileID, flag int) (f *os.File, h fileHeader, m Meta, ino uint64, err error) {
	if err = d.inject(opRead); err != nil {
		return nil, h, m, 0, err
	}
	f, err = openFile(d.path(id), flag)
	if err != nil {
		return nil, h, m, 0, err
	}
	h, m, ino, err = d.readHeader(f)
	if err != nil {
		f.Close()
		return nil, h, m, ino, err
	}
	return f, h, m, ino, nil
}

// readHeader reads, verifies and decodes the header of f, and checks the
// file's length against it.
func (d *Disk) readHeader(f *os.File) (h fileHeader, m Meta, ino uint64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return h, m, 0, err
	}
	ino = fileIno(fi)
	bp := d.headBufs.Get().(*[]byte)
	defer d.headBufs.Put(bp)
	buf := *bp
	n, err := f.ReadAt(buf, 0)
	if n < fixedHeaderLen {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %d-byte file", errCorrupt, n)
		}
		return h, m, ino, err
	}
	h, err = parseFixed(buf[:n])
	if err != nil {
		return h, m, ino, err
	}
	if need := fixedHeaderLen + h.metaLen; need > n {
		buf = make([]byte, need)
		if k, err := f.ReadAt(buf, 0); k < need {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: header cut at %d bytes", errCorrupt, k)
			}
			return h, m, ino, err
		}
		n = need
	}
	h, m, err = parseHeader(buf[:n])
	if err != nil {
		return h, m, ino, err
	}
	if got, want := fi.Size(), h.fileSize(); got != want {
		return h, m, ino, fmt.Errorf("%w: %d-byte file, header says %d", errSize, got, want)
	}
	return h, m, ino, nil
}

// drop deletes the corrupt file of id, if it is still the file with inode
// ino, and counts it.
func (d *Disk) drop(id fileID, ino uint64, why error) {
	what := corruptHeader
	switch {
	case errors.Is(why, errSize):
		what = corruptSize
	case errors.Is(why, errBody):
		what = corruptBody
	}
	st := &d.stripes[id[0]]
	st.Lock()
	removed := false
	var err error
	if fi, serr := os.Lstat(d.path(id)); serr == nil && fileIno(fi) == ino {
		if err = os.Remove(d.path(id)); err == nil || errors.Is(err, fs.ErrNotExist) {
			removed, err = err == nil, nil
		}
	}
	if err == nil {
		// Gone, or replaced by another file: forget the entry only if it
		// was this file's. A file that cannot be removed keeps its entry,
		// so the next read drops it again.
		d.ix.removeIno(id, ino)
		if removed {
			d.ix.unstick(id)
		}
	}
	st.Unlock()
	if err != nil {
		d.met.errors.WithLabelValues(opDelete).Inc()
		d.log.Warn("dropping corrupt object", "file", id.String(), "err", err)
		return
	}
	if removed {
		d.met.corrupt.WithLabelValues(what).Inc()
		d.log.Warn("dropped corrupt object", "file", id.String(), "err", why)
	}
}
