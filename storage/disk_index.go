package storage

import (
	"sync"

	"github.com/outpost-cdn/outpost/storage/internal/s3fifo"
)

// diskEntry is what the index keeps per object file, beside its charge in
// the eviction policy: no key and no metadata, so a million objects cost
// some 80 bytes each and nothing for the garbage collector to scan.
type diskEntry struct {
	// ino is the file's inode number: it tells the file the entry was made
	// for from one that replaced it under the same name.
	ino uint64
	// size is the file's length.
	size int64
	// verified is set once every chunk of the body has matched its checksum
	// in this process (or the process wrote the body itself), after which
	// reads skip verification.
	verified bool
}

// diskIndex is the disk tier's in-memory index: which files exist, their
// charges, and the S3-FIFO policy that picks what to evict. It is safe for
// concurrent use. It changes no files: callers unlink what it evicts.
//
// Once loaded, the index is the list of objects: Get serves no file it does
// not record, and Walk lists what it records. A file therefore leaves the
// index only once it is gone: Delete unlinks first, and a file the policy
// evicted but that could not be unlinked is kept as stuck, which Get does
// not serve but ids still lists, so a purge walking the tier reaches it.
type diskIndex struct {
	mu     sync.Mutex
	policy *s3fifo.Policy[fileID, diskEntry]
	stuck  map[fileID]struct{} // evicted, unlink failed; not charged
}

func newDiskIndex(capacity int64) *diskIndex {
	return &diskIndex{policy: s3fifo.New[fileID, diskEntry](capacity), stuck: make(map[fileID]struct{})}
}

// lookup returns the entry for id; hit counts a hit for the eviction policy.
// freq is the entry's hit count after this lookup (0 to 3).
func (ix *diskIndex) lookup(id fileID, hit bool) (e diskEntry, freq int, ok bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if hit {
		e, ok = ix.policy.Get(id)
	} else {
		e, ok = ix.policy.Peek(id)
	}
	return e, ix.policy.Freq(id), ok
}

// add records a file just committed (renamed over any stuck file of id)
// and returns the ids evicted to fit it, appended to evicted.
func (ix *diskIndex) add(id fileID, e diskEntry, charge int64, evicted []fileID) []fileID {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.stuck, id)
	return ix.policy.Add(id, e, charge, evicted)
}

// restore records files found at start, in the order given, skipping any
// already recorded (committed while loading), and returns the ids evicted
// to fit them.
func (ix *diskIndex) restore(found []foundFile, blockSize int64, evicted []fileID) []fileID {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, f := range found {
		if _, ok := ix.policy.Peek(f.id); ok {
			continue
		}
		evicted = ix.policy.Restore(f.id, diskEntry{ino: f.ino, size: f.size}, roundUp(f.size, blockSize), evicted)
	}
	return evicted
}

// resize corrects the length recorded for the file of id with inode ino,
// and returns the ids evicted if the new charge does not fit.
func (ix *diskIndex) resize(id fileID, ino uint64, size, blockSize int64) []fileID {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e, ok := ix.policy.Peek(id)
	if !ok || e.ino != ino || e.size == size {
		return nil
	}
	e.size = size
	return ix.policy.Add(id, e, roundUp(size, blockSize), nil)
}

// reserve makes room for n more entries.
func (ix *diskIndex) reserve(n int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.policy.Reserve(n)
}

// remove forgets id, whose file is gone.
func (ix *diskIndex) remove(id fileID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.policy.Remove(id)
	delete(ix.stuck, id)
}

// stick records that the file of id, no longer in the policy, could not be
// unlinked.
func (ix *diskIndex) stick(id fileID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.stuck[id] = struct{}{}
}

// unstick forgets a stuck id whose file is gone.
func (ix *diskIndex) unstick(id fileID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.stuck, id)
}

// stuckIDs returns the ids recorded by stick and not yet removed.
func (ix *diskIndex) stuckIDs() []fileID {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ids := make([]fileID, 0, len(ix.stuck))
	for id := range ix.stuck {
		ids = append(ids, id)
	}
	return ids
}

// removeIno forgets id if its entry is for the file with inode ino.
func (ix *diskIndex) removeIno(id fileID, ino uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e, ok := ix.policy.Peek(id); ok && e.ino == ino {
		ix.policy.Remove(id)
	}
}

// has reports whether id is recorded in the policy (stuck ids are not).
func (ix *diskIndex) has(id fileID) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, ok := ix.policy.Peek(id)
	return ok
}

// listed reports whether id is recorded, in the policy or as stuck.
func (ix *diskIndex) listed(id fileID) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, ok := ix.policy.Peek(id)
	if !ok {
		_, ok = ix.stuck[id]
	}
	return ok
}

// markVerified records that the body of the file with inode ino verified.
func (ix *diskIndex) markVerified(id fileID, ino uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e, ok := ix.policy.Peek(id); ok && e.ino == ino && !e.verified {
		e.verified = true
		ix.policy.Set(id, e)
	}
}

// ids returns every recorded id, stuck ones included.
func (ix *diskIndex) ids() []fileID {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ids := ix.policy.Keys(make([]fileID, 0, ix.policy.Len()+len(ix.stuck)))
	for id := range ix.stuck {
		ids = append(ids, id)
	}
	return ids
}

// stats returns the number of entries and the bytes charged.
func (ix *diskIndex) stats() (int, int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.policy.Len(), ix.policy.Bytes()
}

// roundUp rounds n up to a multiple of block.
func roundUp(n, block int64) int64 { return (n + block - 1) / block * block }
