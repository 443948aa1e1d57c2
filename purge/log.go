package purge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The bans log is one file, Config.Dir/bans.log:
//
//	file   = magic *record
//	magic  = "OPBANS2\n"
//	record = length:uint32 crc:uint32 hcrc:uint32 payload      (big-endian)
//
// payload is a Record as JSON, length bytes long (1 to maxRecordLen), crc
// its CRC-32C (Castagnoli), and hcrc the CRC-32C of length and crc. A purge
// is acknowledged only after its record has been written with one write(2)
// and fsynced, so a crash can damage only records that were never
// acknowledged, and only at the end of the file: a bad record that runs
// past the end of the file, or is followed by nothing but zeros (a file
// extended but not written), is such a torn tail and is cut off. A bad
// record followed by anything else is corruption a crash cannot cause; the
// records after it cannot be found, so New bans everything stored before
// the start instead of trusting the disk cache.
//
// hcrc is what makes "runs past the end" trustworthy: without it, a record
// in the middle of the file whose length is damaged to reach past the end
// would pass for a torn tail and silently take every later record with it.
// A record whose header fails hcrc is torn only if nothing but zeros
// follows the header; its length is not believed.
//
// Version 1 ("OPBANS1\n") had no hcrc (record = length crc payload). It is
// still read, with its weaker rule, and the log is then rewritten as
// version 2.
//
// A failed write or fsync leaves the tail unknown, so the next append first
// rewrites the file. The file is rewritten — live records to bans.log.tmp,
// fsync, rename over bans.log, fsync of the directory — when garbage
// (records of retired or subsumed bans) is most of it; the rename makes the
// switch atomic, and the directory fsync makes it durable. Retirement
// deletes objects before the rewrite that forgets their ban; on a journaling
// file system (ext4, XFS) those unlinks are committed no later than the
// rename's transaction, so a crash cannot bring back an object whose ban is
// gone.
const (
	logName      = "bans.log"
	logMagic     = "OPBANS2\n"
	frameLen     = 12 // length, crc, hcrc
	logMagicV1   = "OPBANS1\n"
	frameLenV1   = 8 // length, crc
	maxRecordLen = 64 << 20
	// compactMin is the least garbage worth a rewrite.
	compactMin = 64 << 10
)

// banLog appends records to the bans log. Index.mu guards it.
type banLog struct {
	dir, path string
	f         *os.File // opened for appending
	size      int64    // bytes in the file
	dead      int64    // bytes of records no longer held
	// broken reports that a write or fsync failed, or a rewrite failed
	// after its rename, so the file's tail (or f's file) is not to be
	// trusted: the next append rewrites the file first.
	broken bool
}

// loadedRecord is a record read from the log, and its size there.
type loadedRecord struct {
	rec  Record
	size int64
}

// openLog opens the bans log in dir, creating dir and the log if needed, and
// returns the records it holds. A torn tail is cut off. A corrupt log is
// rewritten with the records before the corruption, and corrupt says what
// was wrong.
func openLog(dir string) (l *banLog, recs []loadedRecord, corrupt error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("purge: Config.Dir: %w", err)
	}
	l = &banLog{dir: dir, path: filepath.Join(dir, logName)}
	data, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := l.rewrite(nil); err != nil {
			return nil, nil, nil, err
		}
		return l, nil, nil, nil
	case err != nil:
		return nil, nil, nil, fmt.Errorf("purge: bans log: %w", err)
	case !bytes.HasPrefix(data, []byte(logMagic)) && !bytes.HasPrefix(data, []byte(logMagicV1)):
		return nil, nil, nil, fmt.Errorf("purge: bans log %s: not an Outpost bans log of a known version (it starts %q)", l.path, data[:min(len(data), 16)])
	}
	recs, good, corrupt := decodeLog(data)
	if v1 := bytes.HasPrefix(data, []byte(logMagicV1)); corrupt != nil || v1 {
		live := make([]Record, len(recs))
		for i, r := range recs {
			live[i] = r.rec
			if v1 { // its size in the rewritten file
				recs[i].size += frameLen - frameLenV1
			}
		}
		if err := l.rewrite(live); err != nil {
			return nil, nil, nil, err
		}
		return l, recs, corrupt, nil
	}
	if err := l.openAppend(); err != nil {
		return nil, nil, nil, err
	}
	if good < int64(len(data)) { // torn tail
		if err := l.f.Truncate(good); err != nil {
			l.close()
			return nil, nil, nil, fmt.Errorf("purge: bans log: cut torn tail: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			l.close()
			return nil, nil, nil, fmt.Errorf("purge: bans log: cut torn tail: %w", err)
		}
	}
	l.size = good
	return l, recs, nil, nil
}

// decodeLog decodes a log file's contents, magic included (either
// version's). It returns the valid records, the length of the valid part,
// and, for a bad record that is not a torn tail, what is wrong.
func decodeLog(data []byte) (recs []loadedRecord, good int64, corrupt error) {
	flen := int64(frameLen)
	if bytes.HasPrefix(data, []byte(logMagicV1)) {
		flen = frameLenV1
	}
	off := int64(len(logMagic)) // as long as logMagicV1
	for off < int64(len(data)) {
		rest := data[off:]
		r, n, err := decodeRecord(rest, flen)
		if err == nil {
			recs = append(recs, loadedRecord{rec: r, size: n})
			off += n
			continue
		}
		if n >= int64(len(rest)) || allZero(rest[n:]) {
			return recs, off, nil
		}
		return recs, off, fmt.Errorf("bad record at offset %d, %d bytes before the end: %w", off, len(rest), err)
	}
	return recs, off, nil
}

// decodeRecord decodes the record b starts with, in a frame flen bytes long
// (frameLen, or frameLenV1 with no header checksum). Even when the record
// is bad it returns the extent of what may belong to it, which may pass the
// end of b: the extent its frame claims, or just the frame when its header
// checksum fails or its length is out of range.
func decodeRecord(b []byte, flen int64) (Record, int64, error) {
	if int64(len(b)) < flen {
		return Record{}, flen, errors.New("short frame")
	}
	if flen == frameLen && checksum(b[:8]) != binary.BigEndian.Uint32(b[8:]) {
		return Record{}, flen, errors.New("frame header checksum mismatch")
	}
	n := int64(binary.BigEndian.Uint32(b))
	extent := flen + n
	switch {
	case n == 0 || n > maxRecordLen: // no writer's length: not believed
		return Record{}, flen, fmt.Errorf("record length %d", n)
	case extent > int64(len(b)):
		return Record{}, extent, errors.New("record runs past the end")
	}
	payload := b[flen:extent]
	if checksum(payload) != binary.BigEndian.Uint32(b[4:]) {
		return Record{}, extent, errors.New("checksum mismatch")
	}
	var r Record
	if err := json.Unmarshal(payload, &r); err != nil {
		return Record{}, extent, err
	}
	if err := r.check(); err != nil {
		return Record{}, extent, err
	}
	return r, extent, nil
}

// appendRecord appends r's frame to b, in the current version.
func appendRecord(b []byte, r *Record) ([]byte, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	if len(payload) > maxRecordLen {
		return b, fmt.Errorf("record %s is %d bytes, over %d", r.ID, len(payload), maxRecordLen)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, checksum(payload))
	b = binary.BigEndian.AppendUint32(b, checksum(b[len(b)-8:]))
	return append(b, payload...), nil
}

// checksum returns the CRC-32C of b.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// append writes r and fsyncs it, and returns its size in the file. live
// returns the records held, for the rewrite a broken log needs first.
func (l *banLog) append(r *Record, live func() []Record) (int64, error) {
	b, err := appendRecord(nil, r)
	if err != nil {
		return 0, fmt.Errorf("purge: bans log: %w", err)
	}
	if l.broken {
		if err := l.rewrite(live()); err != nil {
			return 0, err
		}
	}
	if _, err := l.f.Write(b); err != nil {
		l.broken = true
		return 0, fmt.Errorf("purge: bans log: append %s: %w", r.ID, err)
	}
	if err := l.f.Sync(); err != nil {
		l.broken = true
		return 0, fmt.Errorf("purge: bans log: append %s: %w", r.ID, err)
	}
	l.size += int64(len(b))
	return int64(len(b)), nil
}

// wantsCompaction reports whether garbage is most of the log, and enough
// to be worth a rewrite.
func (l *banLog) wantsCompaction() bool {
	return l.dead >= compactMin && 2*l.dead >= l.size
}

// rewrite replaces the log with one holding recs, atomically and durably,
// and reopens it for appending.
func (l *banLog) rewrite(recs []Record) error {
	tmp := l.path + ".tmp"
	size, err := writeLogFile(tmp, recs)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("purge: bans log: rewrite: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("purge: bans log: rewrite: %w", err)
	}
	l.broken = true // until the new file is durable and open
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("purge: bans log: rewrite: %w", err)
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if err := l.openAppend(); err != nil {
		return err
	}
	l.size, l.dead, l.broken = size, 0, false
	return nil
}

// writeLogFile writes a complete log holding recs to path, fsynced, and
// returns its size.
func writeLogFile(path string, recs []Record) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	size := int64(len(logMagic))
	w.WriteString(logMagic)
	var b []byte
	for i := range recs {
		if b, err = appendRecord(b[:0], &recs[i]); err != nil {
			return 0, err
		}
		w.Write(b)
		size += int64(len(b))
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return size, f.Close()
}

func (l *banLog) openAppend() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("purge: bans log: %w", err)
	}
	l.f = f
	return nil
}

func (l *banLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("purge: bans log: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory, making the entries renamed into it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
