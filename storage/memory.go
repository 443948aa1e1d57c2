package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// MemoryConfig configures a Memory tier. The zero value is usable.
type MemoryConfig struct {
	// MaxBytes bounds the bytes held: bodies plus metadata (Meta.HeaderSize).
	// Zero means 256 MiB.
	MaxBytes int64
	// MaxObjectSize bounds one object (body plus metadata). Larger objects
	// are refused with ErrTooLarge. Zero means MaxBytes/8; it is capped at
	// MaxBytes.
	MaxObjectSize int64
	// AverageObjectSize sizes the admission policy's frequency sketch (ten
	// counters per expected object). Zero means 16 KiB.
	AverageObjectSize int64
}

// Memory is a storage tier held in process memory, bounded by
// MemoryConfig.MaxBytes, on a ristretto cache (TinyLFU admission, sampled LFU
// eviction). It is safe for concurrent use. Commit is best effort: the
// admission policy may drop an object when the tier is full, after which Get
// reports ErrNotFound; Commit says so with ErrNotAdmitted. Close releases
// the cache's goroutines.
//
// Commit, Update and Delete of one key are serialized (by a lock striped
// over the keys, held until the cache has applied the change), because the
// cache applies a new key's insertion later, in its own goroutine: left
// alone, an Update could re-insert a key a concurrent Delete removed, and
// the second of two racing Commits of a new key would be dropped by the
// policy, which keeps the first object and charges it the second's size.
type Memory struct {
	cache   *ristretto.Cache[string, *memObject]
	maxObj  int64
	maxSize int64
	keyMu   [256]sync.Mutex // serializes changes to one key; see lock
}

var (
	_ Tier        = (*Memory)(nil)
	_ Walker      = (*Memory)(nil)
	_ RangeWriter = (*memObject)(nil)
)

// NewMemory returns a Memory tier configured by cfg.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("memory tier: MaxBytes %d is negative", cfg.MaxBytes)
	}
	if cfg.MaxObjectSize < 0 {
		return nil, fmt.Errorf("memory tier: MaxObjectSize %d is negative", cfg.MaxObjectSize)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.MaxObjectSize == 0 {
		cfg.MaxObjectSize = max(cfg.MaxBytes/8, 1)
	}
	cfg.MaxObjectSize = min(cfg.MaxObjectSize, cfg.MaxBytes)
	if cfg.AverageObjectSize <= 0 {
		cfg.AverageObjectSize = 16 << 10
	}
	counters := min(max(cfg.MaxBytes/cfg.AverageObjectSize*10, 1<<12), 1<<24)
	c, err := ristretto.NewCache(&ristretto.Config[string, *memObject]{
		NumCounters:        counters,
		MaxCost:            cfg.MaxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("memory tier: %w", err)
	}
	return &Memory{cache: c, maxObj: cfg.MaxObjectSize, maxSize: cfg.MaxBytes}, nil
}

// MaxObjectSize returns the largest object (body plus metadata) the tier accepts.
func (m *Memory) MaxObjectSize() int64 { return m.maxObj }

// MemoryStats is a snapshot of a Memory tier's usage.
type MemoryStats struct {
	// Bytes is what the objects held are charged: the memory holding their
	// bodies plus their metadata (Meta.HeaderSize).
	Bytes int64
	// MaxBytes is the budget.
	MaxBytes int64
}

// Stats reports the tier's usage. Commits still being applied by the
// admission policy may not be counted yet.
func (m *Memory) Stats() MemoryStats {
	budget := m.cache.MaxCost()
	return MemoryStats{Bytes: budget - m.cache.RemainingCost(), MaxBytes: budget}
}

// Get returns the committed object stored under key, or ErrNotFound.
func (m *Memory) Get(_ context.Context, key string) (Object, error) {
	o, ok := m.cache.Get(key)
	if !ok {
		return nil, ErrNotFound
	}
	return o, nil
}

// Put starts writing an object under mt.Key. It fails with ErrTooLarge when
// mt.Size already exceeds the per-object limit; a body of unknown size (-1)
// fails at the Write that crosses it.
//
// A body of declared size is held in one buffer of that size, allocated at
// the first Write; a body of unknown size grows in chunks, and Commit trims
// the last one (see memWriter.Commit).
func (m *Memory) Put(_ context.Context, mt Meta) (Writer, error) {
	w, err := m.put(mt)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// put is Put returning the concrete type, which Tiered's promotion uses.
func (m *Memory) put(mt Meta) (*memWriter, error) {
	hs := mt.HeaderSize()
	if mt.Size >= 0 && mt.Size+hs > m.maxObj {
		return nil, fmt.Errorf("memory tier: put %s (%d bytes): %w", mt.Key, mt.Size, ErrTooLarge)
	}
	return &memWriter{m: m, meta: mt.Clone(), limit: m.maxObj - hs}, nil
}

// Update replaces the metadata of the object under mt.Key, keeping its body.
// mt.Size is ignored. Update and a concurrent Commit or Delete of the same
// key take effect one after the other, in either order: an Update that
// follows a Delete reports ErrNotFound.
func (m *Memory) Update(_ context.Context, mt Meta) error {
	unlock := m.lock(mt.Key)
	defer unlock()
	old, ok := m.cache.Get(mt.Key)
	if !ok {
		return ErrNotFound
	}
	o := &memObject{meta: mt.Clone(), chunks: old.chunks, held: old.held}
	o.meta.Size = old.meta.Size
	m.set(o)
	return nil
}

// Delete removes the object under key, if any. It never fails.
func (m *Memory) Delete(_ context.Context, key string) error {
	unlock := m.lock(key)
	defer unlock()
	m.cache.Del(key)
	return nil
}

// lock serializes changes to key (Commit, Update, Delete) and returns the
// unlock. Two keys may share a lock; no caller holds two.
func (m *Memory) lock(key string) (unlock func()) {
	mu := &m.keyMu[xxhash.Sum64String(key)%uint64(len(m.keyMu))]
	mu.Lock()
	return mu.Unlock
}

// Walk calls fn with the metadata of every object held. Objects committed
// or deleted while Walk runs may or may not be seen.
func (m *Memory) Walk(ctx context.Context, fn func(*Meta) error) error {
	var all []*memObject
	m.cache.IterValues(func(o *memObject) bool {
		all = append(all, o)
		return false
	})
	for _, o := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(&o.meta); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the cache's background work and drops everything held.
func (m *Memory) Close() error {
	m.cache.Close()
	return nil
}

// set stores o and waits until the cache has applied it, so a Get that
// follows a successful Commit sees the object (unless admission refused it).
// It reports whether the cache holds o afterwards. The caller holds the
// key's lock.
func (m *Memory) set(o *memObject) bool {
	cost := o.held + o.meta.HeaderSize()
	if !m.cache.Set(o.meta.Key, o, cost) {
		// The set buffer was full; let it drain and try once more.
		m.cache.Wait()
		m.cache.Set(o.meta.Key, o, cost)
	}
	m.cache.Wait()
	// Under the key's lock nothing else stores this key, so a key present
	// now holds o. GetTTL, unlike Get, counts no hit.
	_, ok := m.cache.GetTTL(o.meta.Key)
	return ok
}

// memObject is an immutable committed object: a body in chunks, all of which
// but the last are full.
type memObject struct {
	meta   Meta
	chunks [][]byte
	held   int64 // the chunks' capacity: the memory charged for the body
}

func (o *memObject) Meta() *Meta  { return &o.meta }
func (o *memObject) Close() error { return nil }

func (o *memObject) ReadAt(p []byte, off int64) (int, error) {
	return readChunks(o.chunks, o.meta.Size, p, off)
}

// WriteRange writes n bytes from off straight from the chunks.
func (o *memObject) WriteRange(w io.Writer, off, n int64) (int64, error) {
	if off < 0 || n < 0 {
		return 0, fmt.Errorf("memory tier: bad range %d+%d", off, n)
	}
	var written int64
	pos := int64(0)
	for _, c := range o.chunks {
		end := pos + int64(len(c))
		if written < n && off+written < end {
			start := off + written - pos
			part := c[start:min(int64(len(c)), start+n-written)]
			k, err := w.Write(part)
			written += int64(k)
			if err != nil {
				return written, err
			}
		}
		pos = end
	}
	if written < n {
		return written, io.ErrUnexpectedEOF
	}
	return written, nil
}

// readChunks implements io.ReaderAt over chunks holding size bytes in all.
func readChunks(chunks [][]byte, size int64, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memory tier: negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := 0
	pos := int64(0)
	for _, c := range chunks {
		end := pos + int64(len(c))
		if off < end && n < len(p) {
			k := copy(p[n:], c[off+int64(n)-pos:])
			n += k
		}
		pos = end
		if n == len(p) {
			break
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

const (
	writerOpen = iota
	writerCommitted
	writerAborted
	writerClosed
)

// memWriter accumulates a body in chunks. The mutex lets followers ReadAt
// while the writer appends.
type memWriter struct {
	m     *Memory
	meta  Meta
	limit int64 // largest body accepted

	mu     sync.RWMutex
	chunks [][]byte
	n      int64
	state  int
	err    error // sticky error from Write
}

const (
	minChunk = 32 << 10
	maxChunk = 1 << 20
)

func (w *memWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state != writerOpen:
		return 0, ErrClosed
	case w.err != nil:
		return 0, w.err
	case w.n+int64(len(p)) > w.limit:
		w.err = fmt.Errorf("memory tier: write %s past %d bytes: %w", w.meta.Key, w.limit, ErrTooLarge)
		return 0, w.err
	case w.meta.Size >= 0 && w.n+int64(len(p)) > w.meta.Size:
		w.err = fmt.Errorf("memory tier: write %s past declared %d bytes: %w", w.meta.Key, w.meta.Size, ErrSizeMismatch)
		return 0, w.err
	}
	written := len(p)
	for len(p) > 0 {
		last := len(w.chunks) - 1
		if last < 0 || len(w.chunks[last]) == cap(w.chunks[last]) {
			w.chunks = append(w.chunks, make([]byte, 0, w.nextChunk(len(p))))
			last++
		}
		c := w.chunks[last]
		k := copy(c[len(c):cap(c)], p)
		w.chunks[last] = c[:len(c)+k]
		p = p[k:]
		w.n += int64(k)
	}
	return written, nil
}

// nextChunk sizes a new chunk: the exact remainder when the size is
// declared, else growing with the body between minChunk and maxChunk.
func (w *memWriter) nextChunk(want int) int {
	if w.meta.Size >= 0 {
		return int(w.meta.Size - w.n)
	}
	return max(want, min(max(int(w.n), minChunk), maxChunk))
}

func (w *memWriter) ReadAt(p []byte, off int64) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.state == writerClosed {
		return 0, ErrClosed
	}
	return readChunks(w.chunks, w.n, p, off)
}

// maxSlack is the most spare capacity Commit leaves in a body's last chunk;
// more is trimmed by a copy. A body of unknown size grows in chunks of at
// least minChunk, so without the trim a 1 KiB body would hold 32 KiB.
const maxSlack = 4 << 10

// Commit publishes the body, charging the memory that holds it: the last
// chunk of a body of unknown size is first copied to a chunk of its length
// when it has more than 4 KiB spare, so the charge is within 4 KiB of the
// body's length.
//
// It fails with ErrNotAdmitted when the admission policy refused the object.
func (w *memWriter) Commit() error {
	stored, err := w.commit()
	if err == nil && !stored {
		err = fmt.Errorf("memory tier: commit %s: %w", w.meta.Key, ErrNotAdmitted)
	}
	return err
}

// commit is Commit, reporting also whether the cache took the object (its
// admission policy may refuse it).
func (w *memWriter) commit() (stored bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return false, ErrClosed
	}
	if w.err != nil {
		w.state = writerAborted
		return false, w.err
	}
	if w.meta.Size >= 0 && w.n != w.meta.Size {
		w.state = writerAborted
		return false, fmt.Errorf("memory tier: commit %s: %d of %d bytes: %w", w.meta.Key, w.n, w.meta.Size, ErrSizeMismatch)
	}
	w.state = writerCommitted
	if last := len(w.chunks) - 1; last >= 0 && cap(w.chunks[last])-len(w.chunks[last]) > maxSlack {
		w.chunks[last] = bytes.Clone(w.chunks[last]) // followers read under w.mu
	}
	o := &memObject{meta: w.meta, chunks: w.chunks}
	o.meta.Size = w.n
	for _, c := range o.chunks {
		o.held += int64(cap(c))
	}
	unlock := w.m.lock(o.meta.Key)
	defer unlock()
	return w.m.set(o), nil
}

func (w *memWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.state = writerAborted
	}
	return nil
}

// Close aborts an open write and drops the buffered body; the committed
// object, if any, keeps its own reference to the chunks.
func (w *memWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.state = writerAborted
	}
	w.state = writerClosed
	w.chunks, w.n = nil, 0
	return nil
}
