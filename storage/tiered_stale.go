package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Stale disk copies. A Commit that reaches memory only (the disk was
// failing at Put, or its write or commit failed) must remove the older
// object the disk may hold under the key, or that object would be served
// again once memory lets the new one go. The disk is usually failing at that
// moment, so the removal may fail too; failing the Commit would then turn
// memory-only mode into no caching at all. Instead Tiered remembers the key
// as stale and treats its disk copy as absent: Get and Update do not read
// it, and promotion never sees it. Each of those, a Delete, and every
// successful disk commit (which retries a few of the keys) try the removal
// again, and a new disk copy committed under the key ends it.
//
// The set is bounded by maxStaleKeys. A Commit that would have to remember
// one key more removes the new object from memory too and fails, leaving
// the tier as before the write. The set lives in memory: a restart before
// the removal succeeds serves the older disk copy again, as after a
// restart that lost the newer object in memory.

// maxStaleKeys bounds the keys whose stale disk copy Tiered remembers.
const maxStaleKeys = 1 << 16

// staleRetries is how many stale keys a successful disk commit retries.
const staleRetries = 4

// staleKeys is a bounded set of keys. It is safe for concurrent use.
type staleKeys struct {
	n   atomic.Int64 // len(set), read without mu on the hit path
	max int

	mu  sync.Mutex
	set map[string]struct{}
}

// has reports whether key is in the set.
func (s *staleKeys) has(key string) bool {
	if s.n.Load() == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[key]
	return ok
}

// add puts key in the set, reporting false when the set is full.
func (s *staleKeys) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[key]; ok {
		return true
	}
	if len(s.set) >= s.max {
		return false
	}
	if s.set == nil {
		s.set = make(map[string]struct{})
	}
	s.set[key] = struct{}{}
	s.n.Store(int64(len(s.set)))
	return true
}

// remove takes key out of the set.
func (s *staleKeys) remove(key string) {
	if s.n.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, key)
	s.n.Store(int64(len(s.set)))
}

// some returns up to n keys of the set.
func (s *staleKeys) some(n int) []string {
	if s.n.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, min(n, len(s.set)))
	for k := range s.set {
		if len(keys) == n {
			break
		}
		keys = append(keys, k)
	}
	return keys
}

// dropOlderDiskCopy removes the disk copy of key after a Commit that
// reached memory only. When that fails it remembers the key as stale, and
// returns an error only when it cannot. The caller holds key's stripe.
func (t *Tiered) dropOlderDiskCopy(ctx context.Context, key string) error {
	err := t.disk.Delete(ctx, key)
	t.diskFailed(err)
	if err == nil {
		t.stale.remove(key)
		return nil
	}
	if !t.stale.add(key) {
		return fmt.Errorf("tiered: commit %s: memory only, and the older copy on disk could not be removed: %w", key, err)
	}
	return nil
}

// dropStale tries again to remove the stale disk copy of key, under the
// key's stripe, so no Commit comes between. It reports whether the disk's
// copy of key, if any, is still not to be used: true, unless a Commit put a
// new copy on disk meanwhile.
func (t *Tiered) dropStale(ctx context.Context, key string) bool {
	gs := t.genStripe(key)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return t.dropStaleLocked(ctx, key)
}

// dropStaleLocked is dropStale for a caller holding key's stripe.
func (t *Tiered) dropStaleLocked(ctx context.Context, key string) bool {
	if !t.stale.has(key) {
		return false
	}
	err := t.disk.Delete(ctx, key)
	t.diskFailed(err)
	if err == nil {
		t.stale.remove(key)
	}
	return true
}

// retryStale tries again to remove a few stale disk copies: the disk just
// took a commit, so it may be back.
func (t *Tiered) retryStale(ctx context.Context) {
	for _, key := range t.stale.some(staleRetries) {
		t.dropStale(ctx, key)
	}
}
