package edge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// spool holds the body of a response that is shared with a flight's
// followers but not stored (too large for the tiers, or an uncached error),
// in an unlinked temporary file: memory stays flat however large the body,
// and nothing is left behind if the process dies.
//
// When the file cannot be made or stops growing (a full disk, a file size
// limit), the rest of the body is kept in memory, charged to a budget the
// Handler's spools share (Config.SpoolMemory): the clients of the flight
// still get the whole body. Past the budget, writing fails and the fill
// with it, as it would have without the fallback.
type spool struct {
	mu     sync.RWMutex
	f      *os.File // nil when none could be made
	full   bool     // the file stopped growing: new bytes go to mem
	fileN  int64    // bytes in the file; the rest are in mem
	mem    [][]byte
	n      int64
	closed bool

	budget *spoolBudget
	held   int64 // bytes of mem charged to budget
}

// spoolBudget is the memory the spools of a Handler may hold together.
type spoolBudget struct {
	used atomic.Int64
	max  int64
}

var errSpoolBudget = errors.New("spool: disk unavailable and the memory budget is used up")

func newSpool(dir string, budget *spoolBudget) (*spool, error) {
	s := &spool{budget: budget}
	f, err := os.CreateTemp(dir, "outpost-spool-*")
	if err != nil {
		return s, nil // in memory from the first byte
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: unlink %s: %w", f.Name(), err)
	}
	s.f = f
	return s, nil
}

// Write appends to the spool. Only the fill writes.
func (s *spool) Write(p []byte) (int, error) {
	s.mu.RLock()
	closed, off, f := s.closed, s.n, s.f
	if s.full {
		f = nil
	}
	s.mu.RUnlock()
	if closed {
		return 0, os.ErrClosed
	}
	k := 0
	if f != nil {
		k, _ = f.WriteAt(p, off)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n += int64(k)
	if k == len(p) {
		s.fileN = s.n
		return k, nil
	}
	if s.f != nil && !s.full {
		// The file stopped growing: what it holds stays readable, the rest
		// goes to memory.
		s.fileN = s.n
		s.full = true
	}
	rest := p[k:]
	if s.budget == nil || s.budget.used.Add(int64(len(rest))) > s.budget.max {
		if s.budget != nil {
			s.budget.used.Add(-int64(len(rest)))
		}
		return k, errSpoolBudget
	}
	s.held += int64(len(rest))
	s.mem = append(s.mem, append([]byte(nil), rest...))
	s.n += int64(len(rest))
	return len(p), nil
}

// ReadAt reads bytes already written; it may run concurrently with Write.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	n := 0
	if off < s.fileN {
		k, err := s.f.ReadAt(p[:min(int64(len(p)), s.fileN-off)], off)
		n += k
		if err != nil && err != io.EOF {
			return n, err
		}
		if n < len(p) && off+int64(n) < s.fileN {
			return n, io.EOF
		}
	}
	pos := s.fileN
	for _, c := range s.mem {
		at := off + int64(n)
		if n == len(p) {
			break
		}
		if at < pos+int64(len(c)) {
			n += copy(p[n:], c[at-pos:])
		}
		pos += int64(len(c))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close releases the file and the memory.
func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.budget != nil {
		s.budget.used.Add(-s.held)
	}
	s.mem = nil
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
