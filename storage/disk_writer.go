package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// diskWriter writes an object's body into a temporary file, checksumming it
// chunk by chunk as it goes; Commit writes the chunk table and the header
// and renames the file into place.
//
// Followers read the bytes written so far with ReadAt, which is lock-free:
// Write publishes its byte count (written) only after the bytes are in the
// page cache, and pread(2) of the same file sees them. The descriptor stays
// open after Commit (renamed) and Abort (unlinked) until Close, so followers
// finish from it whatever became of the file. A failed Write leaves every
// byte of earlier Writes readable, so the caller can move the body elsewhere
// and followers read on.
type diskWriter struct {
	d       *Disk
	id      fileID
	meta    Meta
	head    []byte // the header area: fixed part (filled at Commit), meta, zeros
	metaLen int    // length of the encoded meta
	area    int64  // offset of the body
	limit   int64  // largest body accepted
	f       *os.File
	tmp     string

	written atomic.Int64 // body bytes in the file, readable by ReadAt
	closed  atomic.Bool  // Close was called: ReadAt fails

	mu    sync.Mutex
	n     int64 // body bytes written (written's value, under mu)
	state int
	err   error         // sticky error from Write
	chunk xxhash.Digest // checksum of the chunk being written
	sums  []uint64      // checksums of the chunks completed
}

func (w *diskWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state != writerOpen:
		return 0, ErrClosed
	case w.err != nil:
		return 0, w.err
	case w.n+int64(len(p)) > w.limit:
		w.err = fmt.Errorf("disk tier: write %s past %d bytes: %w", w.meta.Key, w.limit, ErrTooLarge)
		return 0, w.err
	case w.meta.Size < 0 && !w.d.fits(w.area, w.n+int64(len(p))):
		w.err = fmt.Errorf("disk tier: write %s: file past the %d-byte budget: %w", w.meta.Key, w.d.maxBytes, ErrTooLarge)
		return 0, w.err
	case w.meta.Size >= 0 && w.n+int64(len(p)) > w.meta.Size:
		w.err = fmt.Errorf("disk tier: write %s past declared %d bytes: %w", w.meta.Key, w.meta.Size, ErrSizeMismatch)
		return 0, w.err
	}
	var k int
	err := w.d.inject(opWrite)
	if err == nil {
		k, err = w.f.WriteAt(p, w.area+w.n)
	}
	w.sum(p[:k])
	w.n += int64(k)
	w.written.Store(w.n)
	if err != nil {
		w.d.met.errors.WithLabelValues(opWrite).Inc()
		w.err = fmt.Errorf("disk tier: write %s: %w", w.meta.Key, err)
		return k, w.err
	}
	return k, nil
}

// sum adds p, the body bytes from offset w.n on, to the chunk checksums.
func (w *diskWriter) sum(p []byte) {
	pos := w.n
	for len(p) > 0 {
		room := chunkSize - int(pos%chunkSize)
		k := min(room, len(p))
		w.chunk.Write(p[:k])
		if k == room {
			w.sums = append(w.sums, w.chunk.Sum64())
			w.chunk.Reset()
		}
		p = p[k:]
		pos += int64(k)
	}
}

// ReadAt reads from the body written so far. It is safe to call
// concurrently with Write, and after Commit and Abort; it fails after Close.
func (w *diskWriter) ReadAt(p []byte, off int64) (int, error) {
	if w.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("disk tier: read %s: negative offset %d", w.meta.Key, off)
	}
	n := w.written.Load()
	if off >= n {
		return 0, io.EOF
	}
	want := min(int64(len(p)), n-off)
	k, err := w.f.ReadAt(p[:want], w.area+off)
	if int64(k) < want {
		if errors.Is(err, os.ErrClosed) {
			return k, ErrClosed
		}
		return k, fmt.Errorf("disk tier: read %s while writing: %w", w.meta.Key, err)
	}
	if want < int64(len(p)) {
		return k, io.EOF
	}
	return k, nil
}

// Commit writes the chunk table and the header and renames the file into
// place. The file is complete before it has its name, so no crash can leave
// a half-written object under an object's name; without fsync a power loss
// can, and the checksums catch it.
func (w *diskWriter) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return ErrClosed
	}
	if w.err != nil {
		w.abort()
		return w.err
	}
	if w.meta.Size >= 0 && w.n != w.meta.Size {
		w.abort()
		return fmt.Errorf("disk tier: commit %s: %d of %d bytes: %w", w.meta.Key, w.n, w.meta.Size, ErrSizeMismatch)
	}
	leave, err := w.d.enter()
	if err != nil {
		w.abort()
		return err
	}
	defer leave()
	if err := w.commit(); err != nil {
		w.abort()
		w.d.met.errors.WithLabelValues(opCommit).Inc()
		return fmt.Errorf("disk tier: commit %s: %w", w.meta.Key, err)
	}
	w.state = writerCommitted
	return nil
}

func (w *diskWriter) commit() error {
	if err := w.d.inject(opCommit); err != nil {
		return err
	}
	h := fileHeader{area: w.area, metaLen: w.metaLen, size: w.n}
	if w.n%chunkSize != 0 || w.n == 0 {
		w.sums = append(w.sums, w.chunk.Sum64()) // the last, partial chunk (or the empty body)
	}
	if len(w.sums) == 1 {
		h.bodySum = w.sums[0]
	} else {
		table := make([]byte, 0, 8*len(w.sums))
		for _, s := range w.sums {
			table = binary.LittleEndian.AppendUint64(table, s)
		}
		h.bodySum = xxhash.Sum64(table)
		if _, err := w.f.WriteAt(table, w.area+w.n); err != nil {
			return err
		}
	}
	putHeader(w.head, h)
	if _, err := w.f.WriteAt(w.head, 0); err != nil {
		return err
	}
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	return w.d.install(w.id, w.tmp, fileIno(fi), h.fileSize())
}

// Abort discards the write: the temporary file is removed, while ReadAt
// keeps reading it until Close.
func (w *diskWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.abort()
	}
	return nil
}

func (w *diskWriter) abort() {
	w.state = writerAborted
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.d.log.Warn("remove temporary file", "file", w.tmp, "err", err)
	}
}

// Close aborts a write neither committed nor aborted and closes the file.
func (w *diskWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.abort()
	}
	w.state = writerClosed
	if w.closed.Swap(true) {
		return nil
	}
	return w.f.Close()
}
