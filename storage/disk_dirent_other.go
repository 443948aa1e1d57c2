//go:build !linux

package storage

import "os"

// dirent is a directory entry: a name and, where the platform reports it
// with the name, its inode number (zero when unknown).
type dirent struct {
	name string
	ino  uint64
}

// readDir lists dir. This platform does not report inode numbers with the
// names.
func readDir(dir string) ([]dirent, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	out := make([]dirent, len(names))
	for i, n := range names {
		out[i].name = n
	}
	return out, err
}
