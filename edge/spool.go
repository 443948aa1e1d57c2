package edge

import (
	"fmt"
	"os"
	"sync"
)

// spool holds the body of a response that is shared with a flight's
// followers but not stored (too large for the tiers, or an uncached error),
// in an unlinked temporary file: memory stays flat however large the body,
// and nothing is left behind if the process dies.
type spool struct {
	mu     sync.RWMutex
	f      *os.File
	n      int64
	closed bool
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "outpost-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: unlink %s: %w", f.Name(), err)
	}
	return &spool{f: f}, nil
}

// Write appends to the spool. Only the fill writes.
func (s *spool) Write(p []byte) (int, error) {
	s.mu.RLock()
	closed, off := s.closed, s.n
	s.mu.RUnlock()
	if closed {
		return 0, os.ErrClosed
	}
	k, err := s.f.WriteAt(p, off)
	s.mu.Lock()
	s.n += int64(k)
	s.mu.Unlock()
	return k, err
}

// ReadAt reads bytes already written; it may run concurrently with Write.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	return s.f.ReadAt(p, off)
}

// Close releases the file.
func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}
