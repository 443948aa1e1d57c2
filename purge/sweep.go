package purge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// sweepState is what the sweeper remembers between walks. Index.sweepMu
// guards it.
type sweepState struct {
	walk      uint64 // number of the latest walk
	lastStart int64  // when the latest walk started (Unix nanoseconds)
	lastEnd   int64  // when it ended
	lastDone  int64  // when the latest complete walk started
}

// candidate is a ban that may retire after a walk: its side, and the time
// it had when the walk started.
type candidate struct {
	e    *entry
	soft bool
	at   int64
}

// Run removes banned objects from the tier and retires bans until ctx is
// done; it then returns nil. It walks the tier (Sweep) when there is work:
// soon after a hard ban arrives, CommitDelay after any ban (to retire it),
// SoftTTL after a soft ban that left objects stored, and again after a walk
// that could not remove something — but never sooner than Interval after
// the previous walk started. Between walks it sleeps; with no bans it does
// nothing. A failed walk is logged and tried again. Run may not be called
// again until it has returned.
func (ix *Index) Run(ctx context.Context) error {
	if !ix.running.CompareAndSwap(false, true) {
		return errors.New("purge: Run is already running")
	}
	defer ix.running.Store(false)
	for {
		wait, ok := ix.untilSweep()
		if ok && wait <= 0 {
			if err := ix.Sweep(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				ix.logger.Warn("purge: sweep", "err", err)
			}
			continue
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if ok {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-ix.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Sweep walks the tier once. It deletes every object a hard ban matches
// (and every object a soft ban older than SoftTTL matches), deciding from
// the metadata the walk lists. If the walk completes, every ban that was
// issued at least CommitDelay before the walk started, and matched no
// object the walk left stored or failed to delete, retires; the log is then
// compacted if most of it has become garbage.
//
// Sweep returns an error when the walk did not complete (nothing retires)
// or when objects could not be removed (their bans do not retire). Walks are
// serialized: Run calls Sweep, and so may a test or an operator's command.
func (ix *Index) Sweep(ctx context.Context) error {
	ix.sweepMu.Lock()
	defer ix.sweepMu.Unlock()
	start := ix.now().UnixNano()
	ix.sweeps.walk++
	ix.sweeps.lastStart = start
	cands := ix.candidates(start)
	sw := sweeper{ix: ix, start: start, walk: ix.sweeps.walk, mt: match{collect: true}}
	err := ix.walker.Walk(ctx, func(m *storage.Meta) error {
		sw.visit(ctx, m)
		return nil
	})
	ix.sweeps.lastEnd = ix.now().UnixNano()
	if err != nil {
		ix.met.walks.WithLabelValues("failed").Inc()
		return fmt.Errorf("purge: walk: %w", err)
	}
	ix.met.walks.WithLabelValues("complete").Inc()
	ix.sweeps.lastDone = start

	ix.mu.Lock()
	retired := 0
	for _, c := range cands {
		if c.e.side(c.soft).left != sw.walk && ix.retire(c.e, c.soft, c.at) {
			retired++
		}
	}
	if retired > 0 {
		ix.compact()
	}
	if ix.perKind[KindTag] == 0 {
		ix.tagged.clear() // nothing left for Newest to report
	}
	ix.mu.Unlock()
	ix.met.retired.Add(float64(retired))

	if sw.failed > 0 {
		return fmt.Errorf("purge: %d objects could not be removed; the last error: %w", sw.failed, sw.lastErr)
	}
	return nil
}

// candidates returns the bans that retire if a walk starting at start
// leaves nothing they match.
func (ix *Index) candidates(start int64) []candidate {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var cands []candidate
	for _, e := range ix.live {
		for _, soft := range [...]bool{false, true} {
			if at := e.side(soft).at.Load(); at != 0 && addSat(at, ix.cfg.CommitDelay) <= start {
				cands = append(cands, candidate{e: e, soft: soft, at: at})
			}
		}
	}
	return cands
}

// untilSweep returns how long until Run should walk the tier, and false
// when there is nothing to do until a ban arrives.
func (ix *Index) untilSweep() (time.Duration, bool) {
	ix.sweepMu.Lock()
	last := ix.sweeps
	ix.sweepMu.Unlock()
	due := int64(math.MaxInt64)
	ix.mu.Lock()
	for _, e := range ix.live {
		for _, soft := range [...]bool{false, true} {
			if at := e.side(soft).at.Load(); at != 0 {
				due = min(due, ix.due(at, soft, last.lastDone))
			}
		}
	}
	ix.mu.Unlock()
	if due == math.MaxInt64 {
		return 0, false
	}
	due = max(due, addSat(last.lastStart, ix.cfg.Interval), last.lastEnd+(last.lastEnd-last.lastStart))
	return time.Duration(due - ix.now().UnixNano()), true
}

// due returns when a ban issued at at needs a walk, given that the latest
// complete walk started at done.
func (ix *Index) due(at int64, soft bool, done int64) int64 {
	if !soft && at >= done { // (a walk that started as the ban arrived may have missed it)
		return at // objects to delete: as soon as may be
	}
	if q := addSat(at, ix.cfg.CommitDelay); q > done {
		return q // the first walk that can retire it
	}
	if h := addSat(at, ix.cfg.SoftTTL); soft && h > done {
		return h // objects left stale: removed once SoftTTL has passed
	}
	return addSat(done, ix.cfg.Interval) // something could not be removed: retry
}

// sweeper is one walk's state.
type sweeper struct {
	ix      *Index
	start   int64
	walk    uint64
	mt      match
	cur     []*entry // storage for replaced's match, reused
	failed  int
	lastErr error
}

// visit handles one object listed by the walk. What goes wrong with one
// object is counted in sw and does not stop the walk.
func (sw *sweeper) visit(ctx context.Context, m *storage.Meta) {
	if !sw.matches(m) {
		return
	}
	if sw.mt.tagged != 0 {
		sw.ix.tagged.note(m.URL, sw.mt.tagged)
	}
	if !sw.deletable() {
		sw.leave()
		return
	}
	if sw.replaced(ctx, m) {
		return
	}
	// Delete on the walked metadata, not on a read: a read is no check
	// that an object is gone. On a storage.Tiered, while the disk is
	// degraded, Get answers ErrNotFound for an object still on the disk,
	// which would pass for "already gone" and retire the ban. Only
	// Delete's own answer tells. (replaced reads only to spare a copy
	// stored since the walk listed this one.)
	if err := sw.ix.cfg.Tier.Delete(ctx, m.Key); err != nil {
		sw.fail(err)
		return
	}
	sw.credit()
}

// replaced reports whether the object listed as m has been replaced, since
// the walk listed it, by a copy the bans leave alone: a refetch after the
// purge committed it. The walk's listing may be seconds old by the time an
// object is visited (a memory tier lists every object first), and the
// refetches a purge causes come right after it, so deleting by key on the
// listing alone would delete them too, and cost the origin a second fetch
// per object. What remains is the instant between this read and the
// Delete: a copy committed in it is deleted, which costs a refetch, never
// a stale answer. Any answer but another copy (the same one, none, an
// error) is no replacement: Delete decides. A replacement that a soft ban
// matches keeps that ban from retiring, as if the walk had left it.
func (sw *sweeper) replaced(ctx context.Context, m *storage.Meta) bool {
	o, err := sw.ix.cfg.Tier.Get(ctx, m.Key)
	if err != nil {
		return false
	}
	defer o.Close()
	cur := o.Meta()
	if sameCopy(cur, m) {
		return false
	}
	listed := sw.mt
	sw.mt = match{collect: true, entries: sw.cur[:0]}
	sw.mt.reset(cur)
	sw.ix.lookup(sw.ix.kinds.Load(), cur.URL, cur.Tags, &sw.mt)
	keep := !sw.deletable()
	if keep && sw.mt.newest != 0 {
		sw.leave()
	}
	sw.cur, sw.mt = sw.mt.entries, listed
	return keep
}

// sameCopy reports whether two listings of a key describe the same stored
// copy: a replacement is fetched, or revalidated, at another time.
func sameCopy(a, b *storage.Meta) bool {
	return a.ResponseTime.Equal(b.ResponseTime) && a.RequestTime.Equal(b.RequestTime) &&
		a.OriginTime.Equal(b.OriginTime) && a.Size == b.Size
}

// matches looks m up, leaving the bans that match it in sw.mt.
func (sw *sweeper) matches(m *storage.Meta) bool {
	kinds := sw.ix.kinds.Load()
	if kinds == 0 {
		return false
	}
	sw.mt.reset(m)
	sw.ix.lookup(kinds, m.URL, m.Tags, &sw.mt)
	return sw.mt.newest != 0
}

// deletable reports whether the matching bans remove the object: a hard
// one, or a soft one past SoftTTL.
func (sw *sweeper) deletable() bool {
	_, ok := sw.remover()
	return ok
}

// remover returns the newest matching ban that removes the object.
func (sw *sweeper) remover() (*side, bool) {
	var best *side
	var bestAt int64
	consider := func(sd *side, soft bool) {
		at := sd.at.Load()
		if at > sw.mt.rt && at > bestAt && (!soft || addSat(at, sw.ix.cfg.SoftTTL) <= sw.start) {
			best, bestAt = sd, at
		}
	}
	for _, e := range sw.mt.entries {
		consider(&e.hard, false)
		consider(&e.soft, true)
	}
	return best, best != nil
}

// leave notes that the object the matching bans match stays stored, so
// they cannot retire after this walk.
func (sw *sweeper) leave() {
	for _, e := range sw.mt.entries {
		for _, soft := range [...]bool{false, true} {
			if sd := e.side(soft); sd.at.Load() > sw.mt.rt {
				sd.left = sw.walk
			}
		}
	}
}

// fail notes a failed deletion: the object may still be stored.
func (sw *sweeper) fail(err error) {
	sw.leave()
	sw.failed++
	sw.lastErr = err
}

// credit accounts for an object deleted on behalf of the matching bans.
func (sw *sweeper) credit() {
	sd, ok := sw.remover()
	if !ok {
		return
	}
	if rs := sd.rec.Load(); rs != nil {
		rs.purged.Add(1)
	}
	sw.ix.met.swept.Inc()
	if at := sd.at.Load(); at != 0 {
		sw.ix.met.delay.Observe(time.Duration(sw.ix.now().UnixNano() - at).Seconds())
	}
}

// addSat returns t+d, saturating instead of overflowing.
func addSat(t int64, d time.Duration) int64 {
	if t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}
