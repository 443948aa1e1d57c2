package storage

import (
	"encoding/binary"
	"os"
	"syscall"
)

// dirent is a directory entry: a name and, where the platform reports it
// with the name, its inode number (zero when unknown).
type dirent struct {
	name string
	ino  uint64
}

// readDir lists dir with getdents64(2), which reports each entry's inode
// number for free: enough to tell whether a file is the one an index
// snapshot describes without a stat(2) per file.
func readDir(dir string) ([]dirent, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer syscall.Close(fd)
	var out []dirent
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Getdents(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return out, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		out = parseDirents(buf[:n], out)
	}
}

// parseDirents appends the entries of a getdents64 buffer (struct
// linux_dirent64: d_ino, d_off, d_reclen, d_type, d_name) to out, skipping
// "." and "..".
func parseDirents(b []byte, out []dirent) []dirent {
	const nameOff = 19
	for len(b) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(b[16:]))
		if reclen < nameOff || reclen > len(b) {
			break
		}
		ino := binary.NativeEndian.Uint64(b[0:])
		name := b[nameOff:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if s := string(name); s != "." && s != ".." {
			out = append(out, dirent{name: s, ino: ino})
		}
		b = b[reclen:]
	}
	return out
}
