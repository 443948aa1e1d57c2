package storage_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/outpost-cdn/outpost/storage/storagetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		held += storage.MemoryCharge(m, meta.Key)
		return nil
	})
	assert.Equal(t, held, m.Stats().Bytes, "bytes charged")
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
	want := storage.MemoryCharge(m, "k")
	assert(want >= 4096+meta.HeaderSize(), "charge %d for a 1000-byte body: less than its page and metadata", want)
	assert(st.Bytes == want && st.Objects == 1, "after one 1000-byte object: %+v, want %d bytes", st, want)
	assert(st.ArenaUsed == 4096, "arena pages used: %d bytes, want one page", st.ArenaUsed)
}

// TestMemoryUpdateRacingDeleteNeverResurrects races an Update (a 304
// refresh) with a Delete (a purge) of one key: whichever comes first, the
// key must be gone once both return. Update used to read the object, then
// store it again, so a Delete in between was undone.
func TestMemoryUpdateRacingDeleteNeverResurrects(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 64 << 20})
	ctx := context.Background()
	for i := range 3000 {
		key := fmt.Sprint("k", i)
		store(t, m, meta(key, 1), []byte("x"))
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			m.Update(ctx, meta(key, 1))
		})
		wg.Go(func() {
			<-start
			for range i % 50 { // vary which of the two goes first
				runtime.Gosched()
			}
			m.Delete(ctx, key)
		})
		close(start)
		wg.Wait()
		if o, err := m.Get(ctx, key); err == nil {
			o.Close()
			t.Fatalf("run %d: %q found after Update and Delete both returned", i, key)
		}
	}
}

// TestMemoryConcurrentCommitsOfANewKeyChargeTheStoredObject commits two
// bodies of different sizes under one new key at once. The cache used to
// keep the first object while charging the second's size, as it drops the
// insertion of a key it has not applied yet and only updates the charge.
func TestMemoryConcurrentCommitsOfANewKeyChargeTheStoredObject(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 1 << 30})
	ctx := context.Background()
	var held int64
	for i := range 1000 {
		key := fmt.Sprint("k", i)
		var ws [2]storage.Writer
		for j, n := range []int64{100, 50_000} {
			w, err := m.Put(ctx, meta(key, n))
			require.NoError(t, err)
			_, err = w.Write(make([]byte, n))
			require.NoError(t, err)
			ws[j] = w
		}
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() { assert.NoError(t, w.Commit(), "Commit(%q)", key) })
		}
		wg.Wait()
		for _, w := range ws {
			w.Close()
		}
		o, err := m.Get(ctx, key)
		require.NoError(t, err, "Get(%q) after two commits", key)
		o.Close()
		held += storage.MemoryCharge(m, key)
	}
	assert.Equal(t, held, m.Stats().Bytes, "bytes charged for the objects held")
}

// TestMemoryChunkedBodyIsChargedForItsMemory stores small bodies of
// unknown length. Each used to hold a 32 KiB chunk while charged for its
// length, so a tier could hold many times its budget.
func TestMemoryChunkedBodyIsChargedForItsMemory(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 64 << 20})
	tests := []struct {
		name     string
		giveSize int
	}{
		{"1KiB", 1 << 10},
		{"33KiB", 33 << 10},   // a full first chunk and a second, mostly empty
		{"700KiB", 700 << 10}, // chunks growing with the body
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := randomBody(1, tt.giveSize)
			m2 := meta(tt.name, -1)
			store(t, m, m2, body)
			assert.Equal(t, body, mustGetBody(t, m, tt.name))
			held := storage.MemoryHeld(m, tt.name)
			assert.LessOrEqual(t, held, int64(tt.giveSize+4<<10), "memory holding a %d-byte body", tt.giveSize)
			assert.Equal(t, storage.MemoryCharge(m, tt.name), m.Stats().Bytes, "bytes charged")
			require.NoError(t, m.Delete(context.Background(), tt.name))
		})
	}
}

// TestMemoryCommitMeansStored: under churn in a full tier, every Commit
// that returns nil is found by the Get that follows (the edge answers
// "stored" on that word), and an object whose Commit failed is not.
func TestMemoryCommitMeansStored(t *testing.T) {
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 1 << 20, MaxObjectSize: 64 << 10})
	ctx := context.Background()
	body := make([]byte, 60<<10)
	for i := range 200 {
		key := fmt.Sprintf("k-%d", i%40)
		w, err := m.Put(ctx, storage.Meta{Key: key, URL: key, Status: 200, Size: int64(len(body))})
		require.NoError(t, err)
		_, err = w.Write(body)
		require.NoError(t, err)
		cerr := w.Commit()
		w.Close()
		o, gerr := m.Get(ctx, key)
		if cerr == nil {
			require.NoError(t, gerr, "Get(%q) after a successful Commit", key)
			o.Close()
		} else {
			require.ErrorIs(t, cerr, storage.ErrNotAdmitted, "Commit(%q)", key)
		}
		if i%3 == 0 {
			if o, err := m.Get(ctx, "k-0"); err == nil { // a popular one
				o.Close()
			}
		}
	}
}
