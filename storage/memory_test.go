package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/outpost-cdn/outpost/storage/storagetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMemory(t testing.TB, cfg storage.MemoryConfig) *storage.Memory {
	t.Helper()
	m, err := storage.NewMemory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemoryConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Tier { return newMemory(t, storage.MemoryConfig{MaxBytes: 64 << 20}) },
	})
}

func TestMemoryObjectLimit(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 1 << 20, MaxObjectSize: 10_000})
	ctx := context.Background()

	// A declared size over the limit is refused at Put.
	if _, err := m.Put(ctx, storage.Meta{Key: "big", Status: 200, Size: 20_000}); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Put(20000 bytes) with a 10000-byte limit = %v, want ErrTooLarge", err)
	}
	// An unknown size fails at the Write that crosses the limit, and the
	// object is never published.
	w, err := m.Put(ctx, storage.Meta{Key: "chunked", Status: 200, Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 9000)); err != nil {
		t.Fatalf("first 9000 bytes: %v", err)
	}
	if _, err := w.Write(make([]byte, 2000)); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Write crossing the limit = %v, want ErrTooLarge", err)
	}
	if err := w.Commit(); err == nil {
		t.Error("Commit after a refused Write succeeded")
	}
	if _, err := m.Get(ctx, "chunked"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after failed write = %v, want ErrNotFound", err)
	}
}

func TestMemoryStaysWithinBudget(t *testing.T) {
	const budget = 1 << 20
	m := newMemory(t, storage.MemoryConfig{MaxBytes: budget, MaxObjectSize: 64 << 10})
	ctx := context.Background()
	body := make([]byte, 32<<10)
	for i := range 200 { // 6.4 MiB offered to a 1 MiB tier
		meta := storage.Meta{Key: string(rune('a'+i%26)) + string(rune(i)), Status: 200, Size: int64(len(body))}
		w, err := m.Put(ctx, meta)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var held int64
	m.Walk(ctx, func(meta *storage.Meta) error {
		held += meta.Size + meta.HeaderSize()
		return nil
	})
	if held > budget {
		t.Errorf("memory tier holds %d bytes, over its %d-byte budget", held, budget)
	}
	if held == 0 {
		t.Error("memory tier holds nothing after 200 commits")
	}
}

func TestMemoryStats(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 1 << 20})
	assert := func(cond bool, format string, args ...any) {
		t.Helper()
		if !cond {
			t.Errorf(format, args...)
		}
	}
	st := m.Stats()
	assert(st.Bytes == 0 && st.MaxBytes == 1<<20, "empty tier: %+v", st)
	meta := storage.Meta{Key: "k", Status: 200, Size: 1000}
	w, err := m.Put(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 1000))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	st = m.Stats()
	assert(st.Bytes == 1000+meta.HeaderSize(), "after one 1000-byte object: %+v, want %d bytes", st, 1000+meta.HeaderSize())
}
