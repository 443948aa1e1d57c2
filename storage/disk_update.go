package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Update replaces the metadata of the object under m.Key, keeping its body;
// m.Size is ignored. The header is rewritten in place when the new metadata
// fits the space reserved at Put (the common case: a 304 changes a few
// fields); otherwise the file is copied (copy_file_range where the file
// system can) and renamed over the old one. Objects opened before keep the
// metadata they read. It fails with ErrNotFound when no object is stored
// under m.Key, and with ErrTooLarge when the metadata exceeds 1 MiB or the
// copied file would not fit MaxBytes.
func (d *Disk) Update(_ context.Context, m Meta) error {
	leave, err := d.enter()
	if err != nil {
		return err
	}
	defer leave()
	id := keyID(m.Key)
	st := &d.stripes[id[0]]
	st.Lock()
	ino, evicted, err := d.update(id, m)
	st.Unlock()
	d.unlinkEvicted(evicted)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("disk tier: update %s: %w", m.Key, err)
	case errors.Is(err, errCorrupt):
		d.drop(id, ino, err)
		return ErrNotFound
	}
	d.met.errors.WithLabelValues(opUpdate).Inc()
	return fmt.Errorf("disk tier: update %s: %w", m.Key, err)
}

// update does Update's work with the id's stripe held. It returns the inode
// of the file it found and the ids the index evicted, for the caller to
// unlink once it has released the stripe.
func (d *Disk) update(id fileID, m Meta) (uint64, []fileID, error) {
	f, h, old, ino, err := d.openFile(id, os.O_RDWR)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return ino, nil, err
	}
	defer f.Close()
	if old.Key != m.Key {
		return ino, nil, ErrNotFound
	}
	if d.loaded.Load() && !d.ix.has(id) {
		// Not an object once the index is loaded (see get): delete it.
		d.unlinkUnindexed(id)
		return ino, nil, ErrNotFound
	}
	if err := d.inject(opUpdate); err != nil {
		return ino, nil, err
	}
	head := appendMeta(make([]byte, fixedHeaderLen, h.area), &m)
	metaLen := len(head) - fixedHeaderLen
	if metaLen > maxMetaLen {
		return ino, nil, fmt.Errorf("metadata of %d bytes: %w", metaLen, ErrTooLarge)
	}
	if int64(len(head)) <= h.area {
		// A crash amid this write leaves a header that fails its checksum:
		// the object is lost, never misread.
		putHeader(head, fileHeader{area: h.area, metaLen: metaLen, size: h.size, bodySum: h.bodySum})
		_, err := f.WriteAt(head, 0)
		return ino, nil, err
	}
	evicted, err := d.rewrite(id, f, h, head, ino)
	return ino, evicted, err
}

// rewrite copies the body and chunk table of f under a new, larger header
// into a temporary file and renames it over f's name. It returns the ids
// the index evicted to fit the larger file.
func (d *Disk) rewrite(id fileID, f *os.File, h fileHeader, head []byte, oldIno uint64) ([]fileID, error) {
	metaLen := len(head) - fixedHeaderLen
	nh := fileHeader{area: headerArea(metaLen), metaLen: metaLen, size: h.size, bodySum: h.bodySum}
	if !d.fits(nh.area, nh.size) {
		return nil, fmt.Errorf("file of %d bytes over the %d-byte budget: %w", nh.fileSize(), d.maxBytes, ErrTooLarge)
	}
	head = padTo(head, nh.area)
	putHeader(head, nh)
	t, tmp, err := d.createTemp()
	if err != nil {
		return nil, err
	}
	defer t.Close()
	err = copyAt(t, nh.area, f, h.area, h.size+h.tableLen())
	if err == nil {
		_, err = t.WriteAt(head, 0)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = t.Stat()
	}
	if err == nil {
		err = os.Rename(tmp, d.path(id))
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	// The copy is as trustworthy as the original: verified if it was,
	// otherwise its chunks are checked when read.
	e, _, _ := d.ix.lookup(id, false)
	ne := diskEntry{ino: fileIno(fi), size: nh.fileSize(), verified: e.verified && e.ino == oldIno}
	return d.ix.add(id, ne, roundUp(nh.fileSize(), d.blockSize), nil), nil
}

// padTo returns b extended with zeros to length n.
func padTo(b []byte, n int64) []byte {
	return append(b, make([]byte, n-int64(len(b)))...)
}

// copyAt copies n bytes of src at srcOff to dst at dstOff, through
// copy_file_range(2) where the file system supports it.
func copyAt(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	if _, err := dst.Seek(dstOff, io.SeekStart); err != nil {
		return err
	}
	if _, err := src.Seek(srcOff, io.SeekStart); err != nil {
		return err
	}
	k, err := io.Copy(dst, io.LimitReader(src, n))
	if err == nil && k < n {
		err = fmt.Errorf("%w: copied %d of %d bytes", errSize, k, n)
	}
	return err
}
