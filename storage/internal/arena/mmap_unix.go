//go:build unix

package arena

import (
	"errors"
	"syscall"
)

var errNoMmap = errors.New("arena: mmap not available")

// mapAnon reserves n bytes of private anonymous memory. MAP_NORESERVE: the
// pages are committed as they are written, not all at once, so a large
// budget does not fail under strict overcommit accounting before it is used.
func mapAnon(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
}

func unmapAnon(b []byte) error { return syscall.Munmap(b) }
