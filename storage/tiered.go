package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

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
	// Logger receives a line when the disk starts failing and when it
	// recovers. Nil discards them.
	Logger *slog.Logger
	// Registerer receives outpost_disk_degraded and
	// outpost_tiered_promotions_total. Nil means they are not registered.
	Registerer prometheus.Registerer
	// Now returns the current time, for the retry interval. Nil means
	// time.Now.
	Now func() time.Time
}

// Tiered is a Memory tier in front of a Disk tier. It is safe for
// concurrent use.
//
// Get looks in memory, then on disk; a disk hit is copied into memory
// (promoted) when it is small enough and has been asked for before. Put
// writes through to both tiers, except that bodies over the memory tier's
// per-object limit, or of unknown length, go to disk only. Update and
// Delete reach both tiers. Walk reports each key once.
//
// A failing disk degrades Tiered to memory only, never failing a request
// because of it: a disk I/O error on Get is a miss, and Put, Write and
// Commit carry on with the memory side alone when there is one. The first
// failure logs a line and sets outpost_disk_degraded; for RetryInterval the
// disk is then left alone (Delete excepted, so purges still reach it), after
// which operations try it again, and the first success clears the state. A
// body that was going to disk only and whose disk write fails returns the
// error from Write, and every byte accepted before stays readable through
// ReadAt, so the caller can move the body elsewhere (the edge spills it to
// a spool) while followers keep reading.
//
// Tiered does not own its tiers: close them after the last use of Tiered.
type Tiered struct {
	mem  *Memory
	disk *Disk

	promoteMax     int64
	promoteMinHits int
	retry          time.Duration
	now            func() time.Time
	log            *slog.Logger

	failing atomic.Bool  // the disk failed and has not succeeded since
	retryAt atomic.Int64 // while failing, UnixNano after which the disk is tried

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
			Help: "Disk hits copied into the memory tier.",
		}),
	}
	if t.reg != nil {
		if err := t.reg.Register(t.degraded); err != nil {
			return nil, fmt.Errorf("tiered: register metrics: %w", err)
		}
		if err := t.reg.Register(t.promotions); err != nil {
			t.reg.Unregister(t.degraded)
			return nil, fmt.Errorf("tiered: register metrics: %w", err)
		}
	}
	return t, nil
}

// Ready returns the disk tier's Ready channel: closed once its index is
// loaded.
func (t *Tiered) Ready() <-chan struct{} { return t.disk.Ready() }

// Close unregisters the metrics. It does not close the tiers.
func (t *Tiered) Close() error {
	if t.reg != nil {
		t.reg.Unregister(t.degraded)
		t.reg.Unregister(t.promotions)
	}
	return nil
}

// Get returns the object under key from memory, else from disk. A disk
// that fails is a miss (ErrNotFound), counted and logged.
func (t *Tiered) Get(ctx context.Context, key string) (Object, error) {
	if o, err := t.mem.Get(ctx, key); err == nil {
		if t.diskUsable() {
			t.disk.touch(key) // the disk's eviction policy learns what is popular
		}
		return o, nil
	}
	if !t.diskUsable() {
		return nil, ErrNotFound
	}
	o, err := t.disk.get(key)
	if err != nil {
		t.diskResult(err)
		return nil, ErrNotFound
	}
	t.diskResult(nil)
	t.promote(ctx, o)
	return o, nil
}

// promote copies the disk object o into memory when it is small and
// popular enough. It is best effort.
func (t *Tiered) promote(ctx context.Context, o *diskObject) {
	m := o.Meta()
	if o.freq < t.promoteMinHits || m.Size > t.promoteMax || m.Size+m.HeaderSize() > t.mem.MaxObjectSize() {
		return
	}
	w, err := t.mem.Put(ctx, *m)
	if err != nil {
		return
	}
	defer w.Close()
	if _, err := o.WriteRange(w, 0, m.Size); err != nil {
		return
	}
	if w.Commit() == nil {
		t.promotions.Inc()
	}
}

// Put starts writing m to memory and disk, or to disk only when the body
// is over the memory tier's limit or of unknown length. While the disk is
// failing it writes to memory only, and fails with ErrTooLarge for a body
// over the memory limit.
func (t *Tiered) Put(ctx context.Context, m Meta) (Writer, error) {
	toMem := m.Size >= 0 && m.Size+m.HeaderSize() <= t.mem.MaxObjectSize()
	var dw Writer
	var derr error
	if t.diskUsable() {
		if dw, derr = t.disk.Put(ctx, m); derr != nil {
			t.diskResult(derr)
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
// neither did.
func (t *Tiered) Update(ctx context.Context, m Meta) error {
	merr := t.mem.Update(ctx, m)
	derr := ErrNotFound
	if t.diskUsable() {
		derr = t.disk.Update(ctx, m)
		t.diskResult(derr)
	}
	switch {
	case merr == nil || derr == nil:
		return nil
	case errors.Is(derr, ErrNotFound):
		return merr
	}
	return derr
}

// Delete removes the object under key from both tiers. It tries the disk
// even while it is failing, so a purge reaches every copy that could be
// served later; an error means the disk may still hold the object.
func (t *Tiered) Delete(ctx context.Context, key string) error {
	t.mem.Delete(ctx, key)
	err := t.disk.Delete(ctx, key)
	t.diskResult(err)
	return err
}

// Walk calls fn with the metadata of every object, each key once: first
// those in memory, then those on disk only.
func (t *Tiered) Walk(ctx context.Context, fn func(*Meta) error) error {
	seen := make(map[string]struct{})
	err := t.mem.Walk(ctx, func(m *Meta) error {
		seen[m.Key] = struct{}{}
		return fn(m)
	})
	if err != nil {
		return err
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

// diskResult records the outcome of a disk operation: an I/O error starts
// (or extends) memory-only mode, a success or a per-object condition ends
// it.
func (t *Tiered) diskResult(err error) {
	if isDiskFault(err) {
		t.retryAt.Store(t.now().Add(t.retry).UnixNano())
		if !t.failing.Swap(true) {
			t.degraded.Set(1)
			t.log.Error("disk tier failing: serving from memory only", "retry_in", t.retry, "err", err)
		}
		return
	}
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
