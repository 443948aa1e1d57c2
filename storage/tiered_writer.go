package storage

import (
	"cmp"
	"context"
	"sync"
	"sync/atomic"
)

// tieredWriter tees a body to a memory writer and a disk writer (either may
// be absent). A side whose Write fails is dropped from further writes and
// the others carry on; Write fails only when no side is left. ReadAt reads
// from a side that has every byte accepted so far: memory while it lives,
// else disk, else (no side left) whichever kept more, which still holds
// every byte an earlier Write accepted. The sides hold the same bytes at the
// same offsets, so switching source never changes what a follower reads.
type tieredWriter struct {
	t   *Tiered
	key string
	// behind: memory only while the body arrives, and the disk copy queued
	// at Commit (write-behind).
	behind bool

	src atomic.Pointer[side] // where ReadAt reads; lock-free for followers

	mu        sync.Mutex
	mem, disk side
	state     int
	err       error // the error that dropped the last live side
}

// newTieredWriter tees to mem and disk, either of which may be nil.
func newTieredWriter(t *Tiered, key string, mem, disk Writer) *tieredWriter {
	w := &tieredWriter{t: t, key: key, mem: side{w: mem}, disk: side{w: disk}}
	w.pickSource()
	return w
}

// side is one tier's writer within a tieredWriter.
type side struct {
	w         Writer // nil: this tier is not written
	dead      bool   // a Write failed: written no more, still read
	n         int64  // bytes this side accepted
	committed bool
}

func (s *side) live() bool { return s.w != nil && !s.dead }

func (w *tieredWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return 0, ErrClosed
	}
	if !w.mem.live() && !w.disk.live() {
		return 0, w.err
	}
	for _, s := range []*side{&w.mem, &w.disk} {
		if !s.live() {
			continue
		}
		k, err := s.w.Write(p)
		s.n += int64(k)
		if err != nil {
			s.dead, w.err = true, err
			if s == &w.disk {
				w.t.diskFailed(err)
			}
			w.pickSource()
		}
	}
	if !w.mem.live() && !w.disk.live() {
		return 0, w.err
	}
	return len(p), nil
}

// pickSource points ReadAt at the side to read from.
func (w *tieredWriter) pickSource() {
	switch {
	case w.mem.live():
		w.src.Store(&w.mem)
	case w.disk.live():
		w.src.Store(&w.disk)
	case w.disk.w != nil && (w.mem.w == nil || w.disk.n >= w.mem.n):
		w.src.Store(&w.disk)
	default:
		w.src.Store(&w.mem)
	}
}

// ReadAt reads the body written so far. It may be called concurrently with
// Write, and after Commit and Abort; it fails after Close.
func (w *tieredWriter) ReadAt(p []byte, off int64) (int, error) {
	return w.src.Load().w.ReadAt(p, off)
}

// Commit commits every side still writing. It succeeds when one does, and
// then removes the key from a tier that did not take the new body, so the
// tier cannot serve the version this one replaces; when that tier is the
// disk and the removal fails, the key's disk copy is set aside as stale
// (see tiered_stale.go), and Commit fails only if it cannot be, having
// removed the new body from memory again. A write-behind body committed to
// memory queues its disk copy instead; if the queue is full, the disk's
// older copy is removed as for a memory-only Commit.
//
// It holds the key's generation stripe throughout (see Tiered.settle): an
// older version's pending disk write is canceled before a newer file can
// be installed, and a promotion of the version this one replaces cannot
// land in memory after it.
func (w *tieredWriter) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return ErrClosed
	}
	w.state = writerAborted
	t, ctx := w.t, context.Background()
	var err error
	retry := false
	t.settle(w.key, func() {
		t.wb.cancel(w.key) // an older version's disk copy, queued
		var derr, merr error
		switch {
		case w.disk.live():
			derr = w.disk.w.Commit()
			if w.disk.committed = derr == nil; w.disk.committed {
				t.diskWrote()
				retry = true
			} else {
				t.diskFailed(derr)
			}
		case w.disk.w != nil:
			w.disk.w.Abort()
		}
		var e *memEntry
		switch {
		case w.mem.live():
			e, merr = w.mem.w.(*memWriter).commit()
			w.mem.committed = merr == nil
		case w.mem.w != nil:
			w.mem.w.Abort()
		}
		if w.disk.committed {
			t.stale.remove(w.key) // the new file replaced any stale one
		}
		switch {
		case !w.mem.committed && !w.disk.committed:
			err = cmp.Or(merr, derr, w.err) // w.err: no side was left to commit
		case !w.mem.committed:
			t.mem.Delete(ctx, w.key) // an older version
		case !w.disk.committed && w.behind && t.queueOnCommit(e):
			// The disk copy follows.
		case !w.disk.committed:
			if err = t.dropOlderDiskCopy(ctx, w.key); err != nil {
				t.mem.Delete(ctx, w.key)
			}
		}
	})
	if err != nil {
		return err
	}
	w.state = writerCommitted
	if retry {
		t.retryStale(ctx)
	}
	return nil
}

// Abort discards the write in every tier.
func (w *tieredWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.state = writerAborted
		for _, s := range []*side{&w.mem, &w.disk} {
			if s.w != nil {
				s.w.Abort()
			}
		}
	}
	return nil
}

// Close closes both sides, discarding a write neither committed nor
// aborted.
func (w *tieredWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = writerClosed
	var first error
	for _, s := range []*side{&w.mem, &w.disk} {
		if s.w != nil {
			if err := s.w.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
