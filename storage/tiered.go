package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// TieredConfig configures a Tiered store. The zero value is usable.
type TieredConfig struct {
	// PromoteMaxSize bounds the bodies a disk hit copies into memory: a
	// larger body is served from disk (with sendfile) rather than copied.
	// Zero means 8 MiB. Bodies over the memory tier's MaxObjectSize are
	// never promoted.
	PromoteMaxSize int64
	// PromoteMinHits is how often the disk tier must have seen an object
	// (its eviction policy's hit count, which memory hits feed too, capped
	// at 3) for a disk hit to copy it into memory: an object read once after
	// a restart is not worth a copy the memory tier's admission policy
	// would likely refuse. Zero means 2.
	PromoteMinHits int
	// RetryInterval is how long Tiered uses memory only after the disk tier
	// fails, before trying the disk again. Zero means 30 s.
	RetryInterval time.Duration
	// WriteBehindBytes bounds the bodies committed to memory whose disk
	// copy is not written yet (see tiered_writebehind.go); an object that
	// would exceed it is kept in memory only. The queue keeps the bodies
	// of objects memory evicts before their turn, out of the memory tier's
	// room for bodies in flight. Zero means half of that room
	// (MemoryConfig.InFlightBytes).
	WriteBehindBytes int64
	// WriteBehindWorkers is how many goroutines write queued objects to
	// disk. Zero means 1.
	WriteBehindWorkers int
	// DiskMinUses is how many requests an object that fits memory must
	// have had for its disk copy to be written: 1 writes every object; 2
	// writes one once it is asked for again, on a memory hit or when it is
	// fetched anew soon after memory let it go, so objects asked for once
	// cost the disk nothing (as nginx's proxy_cache_min_uses 2): about half
	// the disk tier's CPU on a trace with many one-hit wonders, for a lower
	// hit ratio when the disk is much larger than memory. Objects too large
	// for memory go to disk at once whatever it says. Zero means 1.
	DiskMinUses int
	// Logger receives a line when the disk starts failing and when it
	// recovers. Nil discards them.
	Logger *slog.Logger
	// Registerer receives outpost_disk_degraded,
	// outpost_tiered_promotions_total and outpost_tiered_write_behind_*.
	// Nil means they are not registered.
	Registerer prometheus.Registerer
	// Now returns the current time, for the retry interval. Nil means
	// time.Now.
	Now func() time.Time
}

// Tiered is a Memory tier in front of a Disk tier. It is safe for
// concurrent use.
//
// Get looks in memory, then among the objects waiting for their disk copy,
// then on disk; a disk hit is copied into memory (promoted) when it is small
// enough and has been asked for before. Put writes a body that fits the
// memory tier to memory, and its disk copy after Commit, off the request
// path (write-behind, see tiered_writebehind.go); bodies over the memory
// tier's per-object limit, of unknown length, or that memory has no room
// for while they arrive, are written to disk directly. Update and Delete
// reach both tiers and the queue. Walk reports each key once. Close
// writes what is queued, and must be called before the tiers are closed.
//
// A failing disk degrades Tiered to memory only, never failing a request
// because of it: a disk I/O error on Get is a miss, and Put, Write and
// Commit carry on with the memory side alone when there is one. The first
// failure logs a line and sets outpost_disk_degraded; for RetryInterval the
// disk is then left alone (Delete excepted, so purges still reach it), after
// which operations try it again, and the first successful write (a Commit
// or an Update of a file) clears the state; reads and deletes do not, as a
// full or read-only disk still serves them. A body that was going to disk
// only and whose disk write fails returns the error from Write, and every
// byte accepted before stays readable through ReadAt, so the caller can move
// the body elsewhere (the edge spills it to a spool) while followers keep
// reading.
//
// Being degraded never makes the disk look empty to the operations that
// must reach every copy: Delete still tries the disk and returns its error,
// and Walk lists the disk's objects or fails. A Commit that reached memory
// only removes the older copy on disk; when that fails, the key is
// remembered and its disk copy is neither served, promoted nor updated
// until a later attempt removes it (see tiered_stale.go).
//
// A disk hit copied into memory (promoted) is committed only if no Commit,
// Update or Delete of the key came between the disk read and the copy's
// commit, so a promotion never brings back a purged object or an older
// version over a newer one.
//
// Tiered does not own its tiers: close them after the last use of Tiered.
type Tiered struct {
	mem  *Memory
	disk *Disk

	promoteMax     int64
	promoteMinHits int
	diskMinUses    int
	retry          time.Duration
	now            func() time.Time
	log            *slog.Logger

	failing atomic.Bool  // the disk failed and has not written since
	retryAt atomic.Int64 // while failing, UnixNano after which the disk is tried

	// gens orders promotions after the changes to a key; see settle.
	gens [256]genStripe

	stale staleKeys // keys whose disk copy is older than memory's

	wb        *writeBehind
	closeOnce sync.Once

	promoteHook func() // tests only: runs between a promotion's copy and its commit
	installHook func() // tests only: runs between a queued disk copy's write and its install

	reg        prometheus.Registerer
	degraded   prometheus.Gauge
	promotions prometheus.Counter
}

var (
	_ Tier   = (*Tiered)(nil)
	_ Walker = (*Tiered)(nil)
)

// NewTiered returns memory in front of disk. It fails when a config field
// is invalid or the metrics cannot be registered.
func NewTiered(mem *Memory, disk *Disk, cfg TieredConfig) (*Tiered, error) {
	switch {
	case mem == nil || disk == nil:
		return nil, errors.New("tiered: a tier is nil")
	case cfg.PromoteMaxSize < 0:
		return nil, fmt.Errorf("tiered: PromoteMaxSize %d is negative", cfg.PromoteMaxSize)
	case cfg.PromoteMinHits < 0:
		return nil, fmt.Errorf("tiered: PromoteMinHits %d is negative", cfg.PromoteMinHits)
	case cfg.RetryInterval < 0:
		return nil, fmt.Errorf("tiered: RetryInterval %v is negative", cfg.RetryInterval)
	case cfg.WriteBehindBytes < 0:
		return nil, fmt.Errorf("tiered: WriteBehindBytes %d is negative", cfg.WriteBehindBytes)
	case cfg.WriteBehindWorkers < 0:
		return nil, fmt.Errorf("tiered: WriteBehindWorkers %d is negative", cfg.WriteBehindWorkers)
	case cfg.DiskMinUses < 0 || cfg.DiskMinUses > 2:
		return nil, fmt.Errorf("tiered: DiskMinUses %d is not 1 or 2", cfg.DiskMinUses)
	}
	if cfg.DiskMinUses == 0 {
		cfg.DiskMinUses = 1
	}
	if cfg.WriteBehindBytes == 0 {
		cfg.WriteBehindBytes = max(mem.inFlight/2, 1<<20)
	}
	if cfg.WriteBehindWorkers == 0 {
		cfg.WriteBehindWorkers = 1
	}
	if cfg.PromoteMaxSize == 0 {
		cfg.PromoteMaxSize = 8 << 20
	}
	if cfg.PromoteMinHits == 0 {
		cfg.PromoteMinHits = 2
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Tiered{
		mem:            mem,
		disk:           disk,
		promoteMax:     cfg.PromoteMaxSize,
		promoteMinHits: cfg.PromoteMinHits,
		diskMinUses:    cfg.DiskMinUses,
		retry:          cfg.RetryInterval,
		now:            cfg.Now,
		log:            cfg.Logger.With("tier", "tiered"),
		reg:            cfg.Registerer,
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outpost_disk_degraded",
			Help: "1 while the disk tier is failing and the cache runs from memory only.",
		}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_tiered_promotions_total",
			Help: "Disk hits copied into the memory tier (and admitted by it).",
		}),
		stale: staleKeys{max: maxStaleKeys},
	}
	t.wb = newWriteBehind(cfg.WriteBehindBytes, cfg.WriteBehindWorkers, t.writeJob)
	if err := promreg.Register(t.reg, "tiered", t.collectors()...); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tiered) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{t.degraded, t.promotions}, t.wb.collectors()...)
}

// Ready returns the disk tier's Ready channel: closed once its index is
// loaded.
func (t *Tiered) Ready() <-chan struct{} { return t.disk.Ready() }

// Close writes the objects waiting for their disk copy, stops the
// write-behind goroutines and unregisters the metrics. It does not close
// the tiers. It is safe to call more than once.
func (t *Tiered) Close() error {
	t.closeOnce.Do(func() {
		t.wb.close()
		if t.reg != nil {
			for _, c := range t.collectors() {
				t.reg.Unregister(c)
			}
		}
	})
	return nil
}

// Flush waits until every object queued for its disk copy so far is
// written (or dropped because the write failed), or ctx is done.
func (t *Tiered) Flush(ctx context.Context) error { return t.wb.flush(ctx) }

// touchEvery is how many memory hits Tiered reports to the disk's eviction
// policy for one: the report hashes the key (SHA-256) and takes the disk
// index's lock, several times the cost of the hit itself, while the policy
// counts at most 3 hits per object, so a sample of the hits tells it what is
// popular just as well.
const touchEvery = 8

// Get returns the object under key from memory, else from disk. A disk
// that fails is a miss (ErrNotFound), counted and logged.
func (t *Tiered) Get(ctx context.Context, key string) (Object, error) {
	if o, err := t.mem.Get(ctx, key); err == nil {
		if e := o.(*memObject).e; !e.disk.Load() {
			t.admitOnHit(ctx, e) // asked for again: worth a disk copy
		} else if rand.Uint32()%touchEvery == 0 && t.diskUsable() {
			// The runtime's per-thread generator: no state shared between
			// the cores serving hits.
			t.disk.touch(key) // the disk's eviction policy learns what is popular
		}
		return o, nil
	}
	if o, ok := t.wb.get(key); ok {
		return o, nil // committed, its disk copy not written yet
	}
	if !t.diskUsable() {
		return nil, ErrNotFound
	}
	gs := t.genStripe(key)
	gen := gs.gen.Load() // before the stale check and the read: see promote
	if t.stale.has(key) && t.dropStale(ctx, key) {
		return nil, ErrNotFound
	}
	o, err := t.disk.get(key)
	if err != nil {
		t.diskFailed(err)
		return nil, ErrNotFound
	}
	t.promote(o, gs, gen)
	return o, nil
}

// promote copies the disk object o into memory when it is small and
// popular enough. It is best effort. gen is the generation of o's key
// (in gs) before o was read: if a Commit, Update or Delete of the key has
// settled since, o may be an older version or a purged object, and memory
// is left as that change set it.
func (t *Tiered) promote(o *diskObject, gs *genStripe, gen uint64) {
	m := o.Meta()
	if o.freq < t.promoteMinHits || m.Size > t.promoteMax || m.Size > t.mem.MaxObjectSize() {
		return
	}
	w, err := t.mem.put(*m)
	if err != nil {
		return
	}
	defer w.Close()
	if _, err := o.WriteRange(w, 0, m.Size); err != nil {
		return
	}
	if t.promoteHook != nil {
		t.promoteHook()
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.gen.Load() != gen {
		return
	}
	if e, err := w.commit(); err == nil {
		e.disk.Store(true) // it came from there
		t.promotions.Inc()
	}
}

// genStripe is one stripe of Tiered's per-key generations. gen counts the
// changes (Commit, Update, Delete) settled for the keys hashing to the
// stripe; mu is held while a change sets what memory holds and bumps gen,
// and while a promotion checks gen and commits.
type genStripe struct {
	mu  sync.Mutex
	gen atomic.Uint64
}

// genStripe returns key's stripe.
func (t *Tiered) genStripe(key string) *genStripe {
	return &t.gens[xxhash.Sum64String(key)%uint64(len(t.gens))]
}

// settle ends a change to key: having changed the disk, the caller sets
// memory in fn, under the key's stripe, which then counts one more
// generation. A promotion whose disk read came before the change either
// commits before fn, which overrides it, or sees the new generation and
// gives up; one whose read came after sees the disk as changed.
func (t *Tiered) settle(key string, fn func()) {
	gs := t.genStripe(key)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	fn()
	gs.gen.Add(1)
}

// Put starts writing m to memory, its disk copy to follow its Commit; to
// disk directly when the body is over the memory tier's limit, of unknown
// length, or memory has no room for it while it arrives. While the disk is
// failing it writes to memory only, and fails with ErrTooLarge for a body
// over the memory limit.
func (t *Tiered) Put(ctx context.Context, m Meta) (Writer, error) {
	toMem := m.Size >= 0 && m.Size <= t.mem.MaxObjectSize()
	if toMem && t.diskUsable() {
		if mw, err := t.mem.Put(ctx, m); err == nil {
			w := newTieredWriter(t, m.Key, mw, nil)
			w.behind = true
			return w, nil
		}
	}
	var dw Writer
	var derr error
	if t.diskUsable() {
		if dw, derr = t.disk.Put(ctx, m); derr != nil {
			t.diskFailed(derr)
		}
	}
	if dw == nil && m.Size < 0 {
		toMem = true // unknown length, no disk: memory, as long as it fits
	}
	var mw Writer
	var merr error
	if toMem {
		mw, merr = t.mem.Put(ctx, m)
	}
	if dw == nil && mw == nil {
		if err := errors.Join(derr, merr); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("tiered: put %s (%d bytes) with the disk failing: %w", m.Key, m.Size, ErrTooLarge)
	}
	return newTieredWriter(t, m.Key, mw, dw), nil
}

// Update replaces the metadata of the object under m.Key in both tiers. It
// succeeds if either tier held the object, and reports ErrNotFound if
// neither did. While the disk is failing, or holds an older version than
// memory (see tiered_stale.go), only memory is updated.
//
// An object waiting for its disk copy gets the new metadata in the queue
// (its file is written with it), and the disk's older copy is left alone.
func (t *Tiered) Update(ctx context.Context, m Meta) error {
	derr, merr := ErrNotFound, error(nil)
	t.settle(m.Key, func() {
		if t.wb.update(m) {
			derr = nil
		} else if t.diskUsable() && !(t.stale.has(m.Key) && t.dropStaleLocked(ctx, m.Key)) {
			if derr = t.disk.Update(ctx, m); derr == nil {
				t.diskWrote()
			} else {
				t.diskFailed(derr)
			}
		}
		merr = t.mem.Update(ctx, m)
	})
	switch {
	case merr == nil || derr == nil:
		return nil
	case errors.Is(derr, ErrNotFound):
		return merr
	}
	return derr
}

// Delete removes the object under key from both tiers and cancels its
// pending disk write. It tries the disk even while it is failing, so a
// purge reaches every copy that could be served later; an error means the
// disk may still hold the object.
func (t *Tiered) Delete(ctx context.Context, key string) error {
	var err error
	t.settle(key, func() {
		t.wb.cancel(key)
		err = t.disk.Delete(ctx, key)
		t.diskFailed(err)
		if err == nil {
			t.stale.remove(key)
		}
		t.mem.Delete(ctx, key)
	})
	return err
}

// Walk calls fn with the metadata of every object, each key once: first
// those in memory, then those waiting for their disk copy, then those on
// disk only. It walks the disk even while
// the disk is failing, and returns the disk's error when it could not list
// every object there.
func (t *Tiered) Walk(ctx context.Context, fn func(*Meta) error) error {
	seen := make(map[string]struct{})
	err := t.mem.Walk(ctx, func(m *Meta) error {
		seen[m.Key] = struct{}{}
		return fn(m)
	})
	if err != nil {
		return err
	}
	for _, m := range t.wb.metas() {
		if _, ok := seen[m.Key]; ok {
			continue
		}
		seen[m.Key] = struct{}{}
		if err := fn(m); err != nil {
			return err
		}
	}
	return t.disk.Walk(ctx, func(m *Meta) error {
		if _, ok := seen[m.Key]; ok {
			return nil
		}
		return fn(m)
	})
}

// diskUsable reports whether to use the disk: it is not failing, or its
// retry interval is over.
func (t *Tiered) diskUsable() bool {
	return !t.failing.Load() || t.now().UnixNano() >= t.retryAt.Load()
}

// diskFailed records the outcome of a disk operation: an I/O error starts
// (or extends) memory-only mode. Other outcomes change nothing.
func (t *Tiered) diskFailed(err error) {
	if !isDiskFault(err) {
		return
	}
	t.retryAt.Store(t.now().Add(t.retry).UnixNano())
	if !t.failing.Swap(true) {
		t.degraded.Set(1)
		t.log.Error("disk tier failing: serving from memory only", "retry_in", t.retry, "err", err)
	}
}

// diskWrote records a successful write to the disk (a Commit or an Update
// of a file), which ends memory-only mode. Reads and deletes do not: a full
// or read-only disk still serves them, and counting them would flap the
// state between each failed write and the next delete.
func (t *Tiered) diskWrote() {
	if t.failing.Load() && t.failing.Swap(false) {
		t.degraded.Set(0)
		t.log.Info("disk tier recovered")
	}
}

// isDiskFault reports whether err from the disk tier is a failure of the
// disk rather than an answer about one object.
func isDiskFault(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound),
		errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrSizeMismatch),
		errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}
