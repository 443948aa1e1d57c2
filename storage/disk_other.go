//go:build !unix

package storage

import "os"

// lockDir does not lock on this platform: nothing stops two Disks from
// sharing a directory.
func lockDir(string) (*os.File, error) { return nil, nil }

// fsBlockSize does not know the block size on this platform.
func fsBlockSize(string) int64 { return 0 }

// fileIno does not know inode numbers on this platform: a file replaced
// while it was being verified is then marked verified too.
func fileIno(os.FileInfo) uint64 { return 0 }

// openFile opens path for reading (and writing, with os.O_RDWR).
func openFile(path string, flag int) (*os.File, error) { return os.OpenFile(path, flag, 0) }
