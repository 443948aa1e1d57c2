package storage

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// A verifier checks the body of an object read back from disk before any
// of its bytes are served. The body is checksummed in 1 MiB chunks; a read
// verifies the chunks it touches that are not verified yet, so the cost is
// one extra read of each chunk the first time it is served, bounded by what
// is served (a range request into a large video checks one or two chunks,
// not the whole file), and nothing on the hit path once the whole body has
// verified: the index then marks the file verified, and later Gets skip the
// verifier altogether.
//
// Guarantee: every body byte the disk tier returns from a file written by
// an earlier process (or changed behind its back) was read, within this
// Object's lifetime, as part of a chunk whose xxhash64 matched the checksum
// recorded at Commit, and the chunk table itself matched the header, whose
// own checksum matched. Bodies written by this process are trusted without
// re-reading, as they went through the page cache; corruption of the media
// under a running process is caught only after a restart. A verifier is
// per Object: concurrent Gets of one unverified object each verify what
// they read.
type verifier struct {
	o *diskObject

	mu     sync.Mutex
	sums   []uint64 // expected xxhash64 of each chunk
	done   []uint64 // bitmap of verified chunks
	left   int      // chunks not yet verified
	marked bool     // the index was told the body verified
	failed error    // the first failure, reported by every later check
}

// newVerifier prepares to verify o's body, reading its chunk table if the
// body spans more than one chunk.
func newVerifier(o *diskObject, h fileHeader) (*verifier, error) {
	n := h.chunks()
	v := &verifier{o: o, left: int(n), done: make([]uint64, (n+63)/64)}
	switch n {
	case 0:
		return v, nil
	case 1:
		v.sums = []uint64{h.bodySum}
		return v, nil
	}
	table := make([]byte, 8*n)
	if k, err := o.f.ReadAt(table, h.area+h.size); k < len(table) {
		return nil, fmt.Errorf("read chunk table: %w", err)
	}
	if got := xxhash.Sum64(table); got != h.bodySum {
		return nil, fmt.Errorf("%w: chunk table checksum %016x, want %016x", errBody, got, h.bodySum)
	}
	v.sums = make([]uint64, n)
	for i := range v.sums {
		v.sums[i] = binary.LittleEndian.Uint64(table[8*i:])
	}
	return v, nil
}

// check verifies the chunks holding body bytes [lo, hi). A chunk that does
// not verify drops the object's file and fails this and every later check.
func (v *verifier) check(lo, hi int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failed != nil {
		return v.failed
	}
	for c := lo >> chunkShift; lo < hi && v.left > 0 && c <= (hi-1)>>chunkShift; c++ {
		if v.done[c/64]&(1<<(c%64)) != 0 {
			continue
		}
		if err := v.checkChunk(c); err != nil {
			v.failed = fmt.Errorf("disk tier: read %s: chunk %d: %w", v.o.meta.Key, c, err)
			if isCorrupt(err) {
				v.o.d.drop(v.o.id, v.o.ino, err)
			}
			return v.failed
		}
		v.done[c/64] |= 1 << (c % 64)
		v.left--
	}
	if v.left == 0 && !v.marked {
		v.marked = true
		v.o.d.ix.markVerified(v.o.id, v.o.ino)
	}
	return nil
}

// checkChunk reads chunk c and compares its checksum.
func (v *verifier) checkChunk(c int64) error {
	o := v.o
	off := c << chunkShift
	n := min(chunkSize, o.meta.Size-off)
	bp := o.d.chunkBufs.Get().(*[]byte)
	defer o.d.chunkBufs.Put(bp)
	buf := (*bp)[:n]
	if k, err := o.f.ReadAt(buf, o.body+off); int64(k) < n {
		if err == nil || isEOF(err) {
			return fmt.Errorf("%w: body cut at %d bytes", errSize, off+int64(k))
		}
		return err
	}
	if got := xxhash.Sum64(buf); got != v.sums[c] {
		return fmt.Errorf("%w: %016x, want %016x", errBody, got, v.sums[c])
	}
	return nil
}
