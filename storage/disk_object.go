package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// diskObject is a committed object opened from its file. It owns the file
// descriptor, so its reads are unaffected by the key being replaced, updated
// or deleted (an unlinked file lives on while open), and WriteRange can
// position it and hand it to sendfile(2).
type diskObject struct {
	d    *Disk
	f    *os.File
	id   fileID
	ino  uint64
	meta Meta
	body int64     // offset of the body in the file
	v    *verifier // nil when the index says the body verified
	freq int       // the index's hit count after the Get that opened this

	mu     sync.Mutex       // held by the WriteRange that uses the file offset
	lr     io.LimitedReader // that WriteRange's reader, reused to save an allocation
	closed atomic.Bool
}

func (o *diskObject) Meta() *Meta { return &o.meta }

// ReadAt reads body bytes with pread(2). It is safe for concurrent use.
// Reading bytes whose chunk does not verify fails (and drops the file).
func (o *diskObject) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk tier: read %s: negative offset %d", o.meta.Key, off)
	}
	size := o.meta.Size
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	if o.v != nil {
		if err := o.v.check(off, off+want); err != nil {
			return 0, err
		}
	}
	n, err := o.f.ReadAt(p[:want], o.body+off)
	if int64(n) < want {
		return n, o.readErr(err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// WriteRange copies n body bytes from off to w by handing w the file: when
// w is an http.ResponseWriter of a net/http server on a TCP connection, its
// ReadFrom passes the file to (*net.TCPConn).ReadFrom, which copies with
// sendfile(2), no byte entering user space (net/http copies the first 512
// bytes itself unless the response header was flushed, so a range that short
// never reaches sendfile). A writer without ReadFrom gets the bytes through a
// pooled 32 KiB buffer.
//
// Handing over the file means positioning its offset, which one WriteRange
// at a time can do. The edge shares one object among the requests that
// followed a fill or a revalidation, and one slow client must not hold up
// the others: a WriteRange that finds another in progress copies with
// pread(2) through a pooled buffer instead.
func (o *diskObject) WriteRange(w io.Writer, off, n int64) (int64, error) {
	if off < 0 || n < 0 {
		return 0, fmt.Errorf("disk tier: read %s: bad range %d+%d", o.meta.Key, off, n)
	}
	want := min(n, max(o.meta.Size-off, 0))
	if o.v != nil {
		if err := o.v.check(off, off+want); err != nil {
			return 0, err
		}
	}
	bp := o.d.copyBufs.Get().(*[]byte)
	defer o.d.copyBufs.Put(bp)
	var k int64
	var err error
	if o.mu.TryLock() {
		k, err = o.sendRange(w, off, want, *bp)
		o.mu.Unlock()
	} else {
		k, err = o.preadRange(w, off, want, *bp)
	}
	if err == nil && want < n {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// sendRange copies want bytes from off to w from the file offset, so that
// w's ReadFrom may use sendfile. The caller holds o.mu.
func (o *diskObject) sendRange(w io.Writer, off, want int64, buf []byte) (int64, error) {
	if _, err := o.f.Seek(o.body+off, io.SeekStart); err != nil {
		return 0, o.readErr(err)
	}
	o.lr = io.LimitedReader{R: o.f, N: want}
	k, err := io.CopyBuffer(w, &o.lr, buf)
	o.lr.R = nil
	switch {
	case err != nil:
		// An error of w (the client went away) is the caller's; an error
		// of the file is ours.
		return k, err
	case k < want:
		return k, o.readErr(nil)
	}
	return k, nil
}

// preadRange copies want bytes from off to w with pread(2), leaving the
// file offset alone, through buf.
func (o *diskObject) preadRange(w io.Writer, off, want int64, buf []byte) (int64, error) {
	var k int64
	for k < want {
		p := buf[:min(int64(len(buf)), want-k)]
		r, rerr := o.f.ReadAt(p, o.body+off+k)
		if r > 0 {
			wn, err := w.Write(p[:r])
			k += int64(wn)
			if err != nil {
				return k, err
			}
			if wn < r {
				return k, io.ErrShortWrite
			}
		}
		if r < len(p) {
			return k, o.readErr(rerr)
		}
	}
	return k, nil
}

// readErr describes a read of the file that came up short: a closed object,
// an I/O error, or a file cut shorter than its header said.
func (o *diskObject) readErr(err error) error {
	switch {
	case errors.Is(err, os.ErrClosed):
		return fmt.Errorf("disk tier: read %s: %w", o.meta.Key, ErrClosed)
	case err == nil || isEOF(err):
		return fmt.Errorf("disk tier: read %s: file cut short: %w", o.meta.Key, io.ErrUnexpectedEOF)
	}
	o.d.met.errors.WithLabelValues(opRead).Inc()
	return fmt.Errorf("disk tier: read %s: %w", o.meta.Key, err)
}

// Close closes the file. Later reads fail with ErrClosed.
func (o *diskObject) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	return o.f.Close()
}

func isCorrupt(err error) bool { return errors.Is(err, errCorrupt) }
func isEOF(err error) bool     { return errors.Is(err, io.EOF) }
