package storage

import "context"

// Test hooks for package storage_test, compiled only into tests.

// SetPromoteHook makes t call fn in each promotion, after the body was
// copied into memory and before it is committed there. Nil removes it. It
// must be set before t is used.
func SetPromoteHook(t *Tiered, fn func()) { t.promoteHook = fn }

// SetInstallHook makes t call fn for each queued disk copy, after its file
// is written and before it is installed. Nil removes it. It must be set
// before t is used.
func SetInstallHook(t *Tiered, fn func()) { t.installHook = fn }

// SetMaxStaleKeys bounds the keys t remembers as having a stale disk copy.
// It must be set before t is used.
func SetMaxStaleKeys(t *Tiered, n int) { t.stale.max = n }

// MemoryHeld returns the bytes of memory holding the body of key's object
// in m, or -1 when m holds no object under key.
func MemoryHeld(m *Memory, key string) int64 {
	o, err := m.Get(nil, key)
	if err != nil {
		return -1
	}
	defer o.Close()
	return int64(o.(*memObject).e.body.pages) * 4096
}

// MemoryCharge returns what m charges the object under key against its
// budget, or -1 when m holds no object under key.
func MemoryCharge(m *Memory, key string) int64 {
	o, err := m.Get(nil, key)
	if err != nil {
		return -1
	}
	defer o.Close()
	return o.(*memObject).e.cost()
}

// FlushWriteBehind waits until every object t queued for its disk copy so
// far is written, or dropped.
func FlushWriteBehind(t *Tiered) error { return t.Flush(context.Background()) }
