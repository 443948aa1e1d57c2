//go:build !unix

package arena

import "errors"

var errNoMmap = errors.New("arena: mmap not available")

func mapAnon(int) ([]byte, error) { return nil, errNoMmap }

func unmapAnon([]byte) error { return nil }
