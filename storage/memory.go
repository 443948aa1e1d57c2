package storage

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/outpost-cdn/outpost/storage/internal/arena"
	"github.com/outpost-cdn/outpost/storage/internal/s3fifo"
)

// MemoryConfig configures a Memory tier. The zero value is usable.
type MemoryConfig struct {
	// MaxBytes bounds what the objects held cost: their bodies, in the 4 KiB
	// pages that hold them, plus their metadata and index entries (see
	// Memory). Zero means 256 MiB.
	MaxBytes int64
	// MaxObjectSize bounds one object's body. Larger bodies are refused
	// with ErrTooLarge (their metadata is charged to the budget, not to this
	// limit). Zero means MaxBytes/8; it is capped at MaxBytes.
	MaxObjectSize int64
	// InFlightBytes is room for bodies beyond MaxBytes: bodies being
	// written (admission and eviction happen at Commit), and bodies evicted
	// or replaced while a reader still reads them. When it is used up, a
	// Put or Write fails with ErrTooLarge and the caller keeps the body
	// elsewhere. Zero means MaxBytes/16 + 16 MiB.
	InFlightBytes int64
	// Arena is where bodies are kept: ArenaMmap (the default), an anonymous
	// memory mapping outside the Go heap, or ArenaHeap, 2 MiB byte slices on
	// the heap allocated once and reused. Either way the collector does not
	// scan them and they are never garbage; ArenaHeap counts towards the
	// collector's heap goal, so it needs a runtime memory limit to keep the
	// process near its budget.
	Arena Arena
	// SmallQueue fixes the share of MaxBytes that new objects enter (the
	// S3-FIFO small queue), between 0.01 and 0.9. Zero means learnt: it
	// starts at 0.1 and follows the workload (see package doc).
	SmallQueue float64
	// MaxFreq is how many times an object hit in the main queue goes round
	// it again before eviction (1 to 7). Lower forgets old popularity
	// faster. Zero means 2.
	MaxFreq int
	// AverageObjectSize is ignored. It sized the frequency sketch of the
	// policy this tier used before.
	//
	// Deprecated: the memory tier has no frequency sketch.
	AverageObjectSize int64
}

// Arena selects where a Memory tier keeps bodies.
type Arena = arena.Backing

// The arenas a Memory tier can keep bodies in.
const (
	ArenaMmap = arena.Mmap
	ArenaHeap = arena.Heap
)

// ParseArena maps "mmap" and "heap" to an Arena.
func ParseArena(s string) (Arena, error) {
	switch s {
	case "mmap", "":
		return ArenaMmap, nil
	case "heap":
		return ArenaHeap, nil
	}
	return 0, fmt.Errorf("arena %q: want mmap or heap", s)
}

// Memory is a storage tier held in process memory, bounded by
// MemoryConfig.MaxBytes. It is safe for concurrent use.
//
// Bodies live in an arena of 4 KiB pages outside the collector's reach
// (see package arena); everything else an object costs is counted beside
// them against the budget: its metadata and key as held on the heap, and
// its index entries (see entryCost). Eviction is S3-FIFO with an adaptive
// small queue (package s3fifo): every committed object enters, so a Commit
// that returns nil is found by the next Get; one-hit wonders leave through
// the small queue without touching the objects hit more than once, and
// when popularity shifts the small queue grows, so that the newly popular
// objects get in about as fast as under LRU.
//
// A hit counts in the object's entry, under one lock held for a map lookup;
// an object handed out by Get holds a reference to its body, so pages are
// reused only once the last reader closes it (Close is required).
type Memory struct {
	maxObj   int64
	maxBytes int64
	inFlight int64 // MemoryConfig.InFlightBytes
	arena    *arena.Arena

	mu      sync.Mutex
	policy  *s3fifo.Policy[uint64, *memEntry]
	objects int
	closed  bool
}

var (
	_ Tier        = (*Memory)(nil)
	_ Walker      = (*Memory)(nil)
	_ RangeWriter = (*memObject)(nil)
)

// NewMemory returns a Memory tier configured by cfg. Close releases its
// memory.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	switch {
	case cfg.MaxBytes < 0:
		return nil, fmt.Errorf("memory tier: MaxBytes %d is negative", cfg.MaxBytes)
	case cfg.MaxObjectSize < 0:
		return nil, fmt.Errorf("memory tier: MaxObjectSize %d is negative", cfg.MaxObjectSize)
	case cfg.InFlightBytes < 0:
		return nil, fmt.Errorf("memory tier: InFlightBytes %d is negative", cfg.InFlightBytes)
	case cfg.SmallQueue != 0 && (cfg.SmallQueue < 0.01 || cfg.SmallQueue > 0.9):
		return nil, fmt.Errorf("memory tier: SmallQueue %g is outside [0.01, 0.9]", cfg.SmallQueue)
	case cfg.MaxFreq < 0 || cfg.MaxFreq > 7:
		return nil, fmt.Errorf("memory tier: MaxFreq %d is outside [1, 7]", cfg.MaxFreq)
	case cfg.Arena != ArenaMmap && cfg.Arena != ArenaHeap:
		return nil, fmt.Errorf("memory tier: unknown Arena %v", cfg.Arena)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.MaxObjectSize == 0 {
		cfg.MaxObjectSize = max(cfg.MaxBytes/8, 1)
	}
	cfg.MaxObjectSize = min(cfg.MaxObjectSize, cfg.MaxBytes)
	if cfg.InFlightBytes == 0 {
		cfg.InFlightBytes = cfg.MaxBytes/16 + 16<<20
	}
	if cfg.MaxFreq == 0 {
		cfg.MaxFreq = 2
	}
	a, err := arena.New(cfg.MaxBytes+cfg.InFlightBytes, cfg.Arena)
	if err != nil {
		return nil, fmt.Errorf("memory tier: %w", err)
	}
	m := &Memory{maxObj: cfg.MaxObjectSize, maxBytes: cfg.MaxBytes, inFlight: cfg.InFlightBytes, arena: a}
	m.policy = s3fifo.NewWithConfig(s3fifo.Config[uint64, *memEntry]{
		Capacity: cfg.MaxBytes,
		MaxFreq:  cfg.MaxFreq,
		Adaptive: cfg.SmallQueue == 0,
		OnEvict:  m.evicted,
	})
	if cfg.SmallQueue != 0 {
		m.policy.SetSmallTarget(int64(cfg.SmallQueue * float64(cfg.MaxBytes)))
	}
	return m, nil
}

// evicted drops the policy's reference to an evicted entry's body. The
// policy calls it under m.mu.
func (m *Memory) evicted(_ uint64, e *memEntry) {
	m.objects--
	e.body.release()
}

// MaxObjectSize returns the largest body the tier accepts.
func (m *Memory) MaxObjectSize() int64 { return m.maxObj }

// MemoryStats is a snapshot of a Memory tier's usage.
type MemoryStats struct {
	// Bytes is what the objects held are charged against the budget: the
	// pages holding their bodies, their metadata and their index entries.
	Bytes int64
	// MaxBytes is the budget.
	MaxBytes int64
	// Objects is the number of objects held.
	Objects int
	// SmallQueueBytes is the share of the budget new objects enter.
	SmallQueueBytes int64
	// ArenaUsed is the memory of the pages in use: bodies held, bodies
	// being written, and bodies evicted but still being read.
	ArenaUsed int64
	// ArenaResident bounds what the arena costs the process (see
	// arena.Stats), and ArenaCapacity is its size: MaxBytes plus the room
	// for bodies in flight.
	ArenaResident, ArenaCapacity int64
	// Arena is where the bodies live ("mmap" or "heap").
	Arena string
}

// Stats reports the tier's usage.
func (m *Memory) Stats() MemoryStats {
	as := m.arena.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemoryStats{
		Bytes:           m.policy.Bytes(),
		MaxBytes:        m.maxBytes,
		Objects:         m.objects,
		SmallQueueBytes: m.policy.SmallTarget(),
		ArenaUsed:       as.Used,
		ArenaResident:   as.Resident,
		ArenaCapacity:   as.Capacity,
		Arena:           m.arena.Backing().String(),
	}
}

// Get returns the committed object stored under key, or ErrNotFound. The
// object must be closed.
func (m *Memory) Get(_ context.Context, key string) (Object, error) {
	h := xxhash.Sum64String(key)
	m.mu.Lock()
	e, ok := m.policy.Get(h)
	if !ok || e.meta.Key != key {
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	e.body.refs.Add(1)
	m.mu.Unlock()
	return &memObject{e: e}, nil
}

// Put starts writing an object under mt.Key. It fails with ErrTooLarge when
// mt.Size already exceeds the per-object limit, or when the room for bodies
// in flight cannot hold it; a body of unknown size (-1) fails at the Write
// that crosses either.
//
// A body of declared size gets its pages at Put; one of unknown size gets
// them as it grows, and Commit returns those it did not use.
func (m *Memory) Put(_ context.Context, mt Meta) (Writer, error) {
	w, err := m.put(mt)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// put is Put returning the concrete type, which Tiered's promotion uses.
func (m *Memory) put(mt Meta) (*memWriter, error) {
	if mt.Size > m.maxObj || int64(arena.Pages(mt.Size))*arena.PageSize+metaCost(&mt) > m.maxBytes {
		return nil, fmt.Errorf("memory tier: put %s (%d bytes): %w", mt.Key, mt.Size, ErrTooLarge)
	}
	w := &memWriter{m: m, meta: mt.Clone(), limit: m.maxObj, body: &memBody{a: m.arena}}
	w.body.refs.Store(1) // the writer's
	if mt.Size > 0 {
		if err := w.body.grow(arena.Pages(mt.Size)); err != nil {
			return nil, fmt.Errorf("memory tier: put %s (%d bytes): %w", mt.Key, mt.Size, err)
		}
	}
	return w, nil
}

// Update replaces the metadata of the object under mt.Key, keeping its body.
// mt.Size is ignored. Update, Commit and Delete of one key take effect one
// after the other: an Update that follows a Delete reports ErrNotFound.
func (m *Memory) Update(_ context.Context, mt Meta) error {
	h := xxhash.Sum64String(mt.Key)
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.policy.Peek(h)
	if !ok || old.meta.Key != mt.Key || m.closed {
		return ErrNotFound
	}
	e := &memEntry{meta: mt.Clone(), body: old.body, seen: old.seen} // the policy's reference moves to e
	e.meta.Size = old.meta.Size
	e.disk.Store(old.disk.Load())
	m.policy.Add(h, e, e.cost(), nil) // in old's place; evicts if e costs more
	return nil
}

// current returns the entry held under key.
func (m *Memory) current(key string) (*memEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.policy.Peek(xxhash.Sum64String(key))
	return e, ok && e.meta.Key == key
}

// Delete removes the object under key, if any. It never fails.
func (m *Memory) Delete(_ context.Context, key string) error {
	h := xxhash.Sum64String(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.policy.Peek(h); ok && e.meta.Key == key {
		m.policy.Remove(h)
		m.objects--
		e.body.release()
	}
	return nil
}

// Walk calls fn with the metadata of every object held. Objects committed
// or deleted while Walk runs may or may not be seen.
func (m *Memory) Walk(ctx context.Context, fn func(*Meta) error) error {
	m.mu.Lock()
	all := make([]*memEntry, 0, m.objects)
	m.policy.Range(func(_ uint64, e *memEntry, _ int64) bool {
		all = append(all, e)
		return true
	})
	m.mu.Unlock()
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(&e.meta); err != nil {
			return err
		}
	}
	return nil
}

// Close drops everything held. Objects and writers handed out keep their
// bodies until closed themselves; then the arena's memory is released.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*memEntry
	m.policy.Range(func(_ uint64, e *memEntry, _ int64) bool {
		all = append(all, e)
		return true
	})
	m.policy = s3fifo.New[uint64, *memEntry](m.maxBytes)
	m.objects = 0
	m.mu.Unlock()
	for _, e := range all {
		e.body.release()
	}
	return m.arena.Close()
}

// commit publishes e, replacing the object under its key, and reports
// whether the tier holds it afterwards.
func (m *Memory) commit(e *memEntry) bool {
	h := xxhash.Sum64String(e.meta.Key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	e.body.refs.Add(1) // the policy's
	// A replaced object (or, rarely, another key with the same hash: the
	// newer wins) leaves its place and hit count to e.
	old, replaced := m.policy.Peek(h)
	e.seen = replaced || m.policy.Ghost(h)
	m.policy.Add(h, e, e.cost(), nil)
	if replaced {
		old.body.release()
	} else {
		m.objects++
	}
	got, ok := m.policy.Peek(h)
	return ok && got == e
}

// memEntry is an immutable committed object: metadata and a body, and
// what Tiered needs to decide on a disk copy.
type memEntry struct {
	meta Meta
	body *memBody
	// seen: the key was held or recently evicted when this was committed
	// (it is asked for again).
	seen bool
	// disk is set once Tiered queued a disk copy, or knows there is one.
	disk atomic.Bool
}

// cost is what e is charged against the budget.
func (e *memEntry) cost() int64 {
	return int64(e.body.pages)*arena.PageSize + metaCost(&e.meta) + int64(cap(e.body.exts))*extentSize
}

// The fixed parts of an entry's cost, from the sizes of Go 1.26's
// structures on amd64 and checked against the heap by
// TestMemoryChargeCoversHeap (which finds the charge 1.1-1.3 × what an
// entry takes): the entry with its Meta (256 bytes), the body record, the
// policy's node and index slot, two ghost records once evicted; then a
// header field as http.Header holds it (a map slot and its share of the
// map, counted with the name's bytes though common names are shared), a
// value (a string in the values array), and an element of the other lists.
const (
	entryOverhead = 420
	fieldOverhead = 56
	valueOverhead = 16
	listOverhead  = 24
	extentSize    = 8
)

// metaCost is what m costs on the heap when held by an entry: the strings
// it refers to (key, URL, header names and values, lists) and the
// structures around them.
func metaCost(m *Meta) int64 {
	n := int64(entryOverhead + len(m.Key) + len(m.URL))
	for k, vs := range m.Header {
		n += int64(fieldOverhead + len(k))
		for _, v := range vs {
			n += int64(valueOverhead + len(v))
		}
	}
	for _, list := range [...][]string{m.Tags, m.Vary, m.Variants} {
		for _, s := range list {
			n += int64(listOverhead + len(s))
		}
	}
	return n
}

// memBody is a body's pages in the arena, shared by the writer that wrote
// it, the policy while the object is held, and the objects Get hands out.
// The last to release it frees the pages.
type memBody struct {
	a     *arena.Arena
	exts  []arena.Extent
	pages int
	refs  atomic.Int32
}

// grow adds pages until the body has n. It fails with ErrTooLarge when the
// arena has no room left.
func (b *memBody) grow(n int) error {
	if n <= b.pages {
		return nil
	}
	exts, err := b.a.Alloc(n-b.pages, b.exts)
	if err != nil {
		return fmt.Errorf("no room for bodies in flight (%w): %w", err, ErrTooLarge)
	}
	b.exts, b.pages = exts, n
	return nil
}

// trim frees the pages past the first n.
func (b *memBody) trim(n int) {
	if n >= b.pages {
		return
	}
	var drop []arena.Extent
	keep, pos := b.exts[:0:0], 0
	for _, e := range b.exts {
		switch {
		case pos >= n:
			drop = append(drop, e)
		case pos+int(e.N) > n:
			k := uint32(n - pos)
			keep = append(keep, arena.Extent{Page: e.Page, N: k})
			drop = append(drop, arena.Extent{Page: e.Page + k, N: e.N - k})
		default:
			keep = append(keep, e)
		}
		pos += int(e.N)
	}
	b.a.Free(drop)
	b.exts, b.pages = keep, n
}

// release drops one reference, freeing the pages with the last.
func (b *memBody) release() {
	if n := b.refs.Add(-1); n == 0 {
		b.a.Free(b.exts)
	} else if n < 0 {
		panic("memory tier: body released more often than referenced")
	}
}

// each calls fn with the body's memory from off for n bytes, in pieces,
// until fn fails.
func (b *memBody) each(off, n int64, fn func(p []byte) error) error {
	pos := int64(0)
	for _, e := range b.exts {
		if n <= 0 {
			return nil
		}
		size := int64(e.N) * arena.PageSize
		if off < pos+size {
			start := off - pos
			k := min(size-start, n)
			if err := fn(b.a.Bytes(e)[start : start+k]); err != nil {
				return err
			}
			off += k
			n -= k
		}
		pos += size
	}
	return nil
}

// readAt implements io.ReaderAt over the first size bytes of the body.
func (b *memBody) readAt(p []byte, off, size int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memory tier: negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := 0
	b.each(off, min(int64(len(p)), size-off), func(q []byte) error {
		n += copy(p[n:], q)
		return nil
	})
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// memObject is an object handed out by Get: a reference to an entry's
// body, released by Close.
type memObject struct {
	e      *memEntry
	closed atomic.Bool
}

func (o *memObject) Meta() *Meta { return &o.e.meta }

// Close releases the body. It is safe to call more than once.
func (o *memObject) Close() error {
	if !o.closed.Swap(true) {
		o.e.body.release()
	}
	return nil
}

func (o *memObject) ReadAt(p []byte, off int64) (int, error) {
	if o.closed.Load() {
		return 0, ErrClosed
	}
	return o.e.body.readAt(p, off, o.e.meta.Size)
}

// WriteRange writes n bytes from off straight from the pages.
func (o *memObject) WriteRange(w io.Writer, off, n int64) (int64, error) {
	if off < 0 || n < 0 {
		return 0, fmt.Errorf("memory tier: bad range %d+%d", off, n)
	}
	if o.closed.Load() {
		return 0, ErrClosed
	}
	size := o.e.meta.Size
	want := n
	if off+n > size {
		n = max(size-off, 0)
	}
	var written int64
	err := o.e.body.each(off, n, func(p []byte) error {
		k, err := w.Write(p)
		written += int64(k)
		return err
	})
	if err == nil && written < want {
		err = io.ErrUnexpectedEOF
	}
	return written, err
}

const (
	writerOpen = iota
	writerCommitted
	writerAborted
	writerClosed
)

// memWriter writes a body into arena pages. The mutex lets followers
// ReadAt while the writer appends.
type memWriter struct {
	m     *Memory
	meta  Meta
	limit int64 // largest body accepted

	mu    sync.RWMutex
	body  *memBody
	n     int64
	state int
	err   error // sticky error from Write
}

// growStep bounds how many pages a body of unknown size takes at once
// (1 MiB): it grows by half its size, from 32 KiB.
const (
	minGrowPages = 8
	maxGrowPages = 256
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
	if need := arena.Pages(w.n + int64(len(p))); need > w.body.pages {
		step := min(max(w.body.pages/2, minGrowPages), maxGrowPages)
		if err := w.body.grow(max(need, w.body.pages+step)); err != nil {
			if err = w.body.grow(need); err != nil {
				w.err = fmt.Errorf("memory tier: write %s: %w", w.meta.Key, err)
				return 0, w.err
			}
		}
	}
	k := 0
	w.body.each(w.n, int64(len(p)), func(q []byte) error {
		k += copy(q, p[k:])
		return nil
	})
	w.n += int64(k)
	return k, nil
}

func (w *memWriter) ReadAt(p []byte, off int64) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.state == writerClosed {
		return 0, ErrClosed
	}
	return w.body.readAt(p, off, w.n)
}

// Commit publishes the body, first returning to the arena the pages a body
// of unknown size did not fill. Every committed object is kept (eviction
// makes room for it), so Commit fails with ErrNotAdmitted only if the tier
// was closed meanwhile.
func (w *memWriter) Commit() error {
	_, err := w.commit()
	return err
}

// commit is Commit, returning also the entry the tier now holds.
func (w *memWriter) commit() (*memEntry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return nil, ErrClosed
	}
	if w.err != nil {
		w.state = writerAborted
		return nil, w.err
	}
	if w.meta.Size >= 0 && w.n != w.meta.Size {
		w.state = writerAborted
		return nil, fmt.Errorf("memory tier: commit %s: %d of %d bytes: %w", w.meta.Key, w.n, w.meta.Size, ErrSizeMismatch)
	}
	w.state = writerCommitted
	w.body.trim(arena.Pages(w.n)) // followers read under w.mu, below w.n
	e := &memEntry{meta: w.meta, body: w.body}
	e.meta.Size = w.n
	if !w.m.commit(e) {
		return nil, fmt.Errorf("memory tier: commit %s: %w", w.meta.Key, ErrNotAdmitted)
	}
	return e, nil
}

func (w *memWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerOpen {
		w.state = writerAborted
	}
	return nil
}

// Close aborts an open write and releases the writer's reference to the
// body: the pages go back to the arena unless the committed object holds
// them.
func (w *memWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == writerClosed {
		return nil
	}
	w.state = writerClosed
	w.body.release()
	return nil
}
