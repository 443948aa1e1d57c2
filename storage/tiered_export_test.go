package storage

// Test hooks for package storage_test, compiled only into tests.

// SetPromoteHook makes t call fn in each promotion, after the body was
// copied into memory and before it is committed there. Nil removes it. It
// must be set before t is used.
func SetPromoteHook(t *Tiered, fn func()) { t.promoteHook = fn }

// SetMaxStaleKeys bounds the keys t remembers as having a stale disk copy.
// It must be set before t is used.
func SetMaxStaleKeys(t *Tiered, n int) { t.stale.max = n }

// MemoryHeld returns the bytes of memory holding the body of key's object
// in m, or -1 when m holds no object under key.
func MemoryHeld(m *Memory, key string) int64 {
	o, ok := m.cache.Get(key)
	if !ok {
		return -1
	}
	var n int64
	for _, c := range o.chunks {
		n += int64(cap(c))
	}
	return n
}
