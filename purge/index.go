package purge

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed reports a purge offered to a closed Index.
var ErrClosed = errors.New("purge: index closed")

var _ Purger = (*Index)(nil)

// Config configures an Index. Canonicalize and Tier are required.
type Config struct {
	// Canonicalize returns the canonical form of an absolute http(s) URL:
	// the form of storage.Meta.URL. cmd passes the edge's. URL and prefix
	// purges are canonicalized with it, so it must map a prefix of a URL to
	// a prefix of the URL's canonical form.
	Canonicalize func(rawURL string) (string, error)
	// Tier is the storage the sweeper walks and deletes from; it must
	// implement storage.Walker. Give the outermost tier, whose Walk lists,
	// and whose Delete removes from, every tier below it.
	Tier storage.Tier
	// Dir is where the bans log (bans.log) is kept: the disk tier's
	// directory, so that bans outlive restarts exactly as long as the
	// objects they ban. Empty means bans are kept in memory only, which is
	// right when nothing else outlives the process either.
	Dir string
	// Interval is the least time between the starts of two walks of the
	// tier. Zero means 1 minute.
	Interval time.Duration
	// CommitDelay bounds how long a tier write can be in flight: from the
	// moment its metadata was obtained (a request sent upstream, or an
	// object read from a lower tier and checked against the bans) to its
	// Commit, so a ban retires only after a walk that began CommitDelay
	// after the ban. It is also how long, at least, a node remembers a
	// ban: a copy that a parent tier hands on later with an older
	// Meta.OriginTime is caught only while the ban is held, so the
	// guarantee across tiers holds for parents that apply a purge within
	// CommitDelay of its issue (a parent cut off from the fleet's bus for
	// longer may hand on its old copy). Set it to at least the edge's fill
	// timeout. Zero means 10 minutes.
	CommitDelay time.Duration
	// SoftTTL is how long objects a soft ban matches may stay stored, to be
	// served stale and revalidated; after it the sweeper removes those
	// still unrefreshed, so the ban can retire. Zero means 24 hours.
	SoftTTL time.Duration
	// RecentSize is how many purges Recent remembers. Zero means 100.
	RecentSize int
	// TaggedURLs is how many URLs the Index remembers a tag ban for, once
	// the ban has matched one of their stored objects (on a lookup, or in
	// a walk), so that Newest reports the ban after the object is gone.
	// Each costs about 100 bytes plus the URL; beyond the bound the URL
	// noted first is forgotten, and a refetch of it after a tag purge
	// carries no purge time to the tier above. Zero means 100,000.
	TaggedURLs int
	// Registerer receives the package's metrics: outpost_purge_bans_total
	// {kind,mode}, outpost_purge_active_bans,
	// outpost_purge_swept_objects_total,
	// outpost_purge_eviction_delay_seconds, outpost_purge_walks_total
	// {result} and outpost_purge_retired_bans_total. Nil means none are
	// registered.
	Registerer prometheus.Registerer
	// Logger receives what the sweeper cannot report otherwise (walk and
	// log failures). Nil means nothing is logged.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now. Ban times come from it, and
	// Check compares them with the times the edge stamped on objects
	// (storage.Meta.ObtainedAt: RequestTime, ResponseTime, OriginTime),
	// possibly before a restart or on another tier, and with the times of
	// purges other nodes issued (Apply). So
	// it must be the wall clock the edge stamps objects with, kept close to
	// true time across the fleet (NTP). Where clocks disagree, a ban misses
	// an object fetched before it but stamped later (by a clock ahead of the
	// ban's), and bans one fetched after it but stamped earlier (by a clock
	// behind), which costs a refetch. As cheap insurance against a
	// backwards step of this clock between two purges, Purge never issues a
	// time earlier than the newest purge the Index has taken (issued,
	// applied or loaded).
	Now func() time.Time
}

// Index is the ban list: it records purges, answers Check on every cache
// lookup, and (Run) removes banned objects from the tier and retires bans
// nothing stored predates any longer. It is safe for concurrent use. Create
// it with New; Close it when done. It starts no goroutine of its own: the
// owner runs Run.
type Index struct {
	cfg    Config
	walker storage.Walker
	log    *banLog // nil without Config.Dir
	met    *metrics
	logger *slog.Logger

	// What Check reads, without locks.
	kinds   atomic.Uint32       // bit per Kind (kindBit) with at least one entry
	entries [kindCount]sync.Map // by Kind: Ban.Value → *entry
	floors  sync.Map            // floor of a prefix ban → *floorSet
	active  atomic.Int64        // sides holding a ban
	tagged  *taggedURLs         // URLs a tag ban matched an object of

	// mu serializes changes to the bans and the log.
	mu      sync.Mutex
	live    map[Ban]*entry
	perKind [kindCount]int
	records map[string]*recState // records holding at least one side, by ID
	recent  []*recState          // ring of the last RecentSize records
	next    int                  // where recent's next record goes
	latest  int64                // time of the newest record taken (Unix nanoseconds)
	closed  bool

	wake    chan struct{} // a ban was added: Run reconsiders its schedule
	running atomic.Bool

	// sweepMu serializes walks; it is taken before mu.
	sweepMu sync.Mutex
	sweeps  sweepState
}

// recState is a record held by the index.
type recState struct {
	rec    Record       // immutable; Purged unused
	purged atomic.Int64 // objects the sweeper removed on its behalf
	refs   int          // sides whose newest ban it is; Index.mu
	size   int64        // its bytes in the log; Index.mu
}

// snapshot returns the record with its count of removed objects.
func (rs *recState) snapshot() Record {
	r := rs.rec
	r.Purged = rs.purged.Load()
	return r
}

// New returns an Index configured by cfg. With cfg.Dir set it loads the bans
// log there, creating it if missing; a log corrupt before its end (not just
// a torn last record) cannot tell which bans it lost, so New then bans
// everything stored before it started, and logs why.
func New(cfg Config) (*Index, error) {
	switch {
	case cfg.Canonicalize == nil:
		return nil, errors.New("purge: Config.Canonicalize is nil")
	case cfg.Tier == nil:
		return nil, errors.New("purge: Config.Tier is nil")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("purge: Config.Interval %v is negative", cfg.Interval)
	case cfg.CommitDelay < 0:
		return nil, fmt.Errorf("purge: Config.CommitDelay %v is negative", cfg.CommitDelay)
	case cfg.SoftTTL < 0:
		return nil, fmt.Errorf("purge: Config.SoftTTL %v is negative", cfg.SoftTTL)
	case cfg.RecentSize < 0:
		return nil, fmt.Errorf("purge: Config.RecentSize %d is negative", cfg.RecentSize)
	case cfg.TaggedURLs < 0:
		return nil, fmt.Errorf("purge: Config.TaggedURLs %d is negative", cfg.TaggedURLs)
	}
	walker, ok := cfg.Tier.(storage.Walker)
	if !ok {
		return nil, fmt.Errorf("purge: Config.Tier %T does not implement storage.Walker", cfg.Tier)
	}
	cfg.Interval = cmp.Or(cfg.Interval, time.Minute)
	cfg.CommitDelay = cmp.Or(cfg.CommitDelay, 10*time.Minute)
	cfg.SoftTTL = cmp.Or(cfg.SoftTTL, 24*time.Hour)
	cfg.RecentSize = cmp.Or(cfg.RecentSize, 100)
	cfg.TaggedURLs = cmp.Or(cfg.TaggedURLs, 100_000)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ix := &Index{
		cfg:     cfg,
		walker:  walker,
		logger:  cfg.Logger,
		live:    make(map[Ban]*entry),
		records: make(map[string]*recState),
		recent:  make([]*recState, 0, cfg.RecentSize),
		tagged:  newTaggedURLs(cfg.TaggedURLs),
		wake:    make(chan struct{}, 1),
	}
	if ix.logger == nil {
		ix.logger = slog.New(slog.DiscardHandler)
	}
	ix.met = newMetrics(func() float64 { return float64(ix.active.Load()) })
	if cfg.Dir != "" {
		if err := ix.loadLog(); err != nil {
			return nil, err
		}
	}
	if cfg.Registerer != nil {
		if err := ix.met.register(cfg.Registerer); err != nil {
			ix.Close()
			return nil, err
		}
	}
	return ix, nil
}

// loadLog opens the bans log in Config.Dir and applies what it holds.
func (ix *Index) loadLog() error {
	l, recs, corrupt, err := openLog(ix.cfg.Dir)
	if err != nil {
		return err
	}
	ix.log = l
	ix.mu.Lock()
	for _, r := range recs {
		if _, held := ix.records[r.rec.ID]; held { // applied twice, from the fleet
			l.dead += r.size
			continue
		}
		ix.apply(&recState{rec: r.rec, size: r.size})
	}
	ix.compact()
	ix.mu.Unlock()
	if corrupt == nil {
		return nil
	}
	rec := Record{ID: rand.Text(), Bans: []Ban{{Kind: KindAll}}} // issued now, by add
	ix.logger.Error("purge: bans log corrupt; banning everything stored before now",
		"path", l.path, "err", corrupt, "id", rec.ID)
	if _, _, err := ix.add(rec); err != nil {
		l.close()
		return err
	}
	return nil
}

// Purge validates req as a whole, then records it as one Record issued now:
// persisted (fsynced) when the Index has a Dir, then applied, so Check
// reports its bans as soon as Purge returns. Its time is the clock's, or
// the newest time of a purge already taken if that is later (the clock
// stepped back; see Config.Now). A request that fails validation returns a
// *ValidationError and records nothing. The Record returned has the
// purge's ID, time and canonical bans.
func (ix *Index) Purge(ctx context.Context, req Request) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	bans, err := req.bans(ix.cfg.Canonicalize)
	if err != nil {
		return Record{}, err
	}
	rs, _, err := ix.add(Record{ID: rand.Text(), Soft: req.Soft, Bans: bans}) // issued now, by add
	if err != nil {
		return Record{}, err
	}
	return rs.snapshot(), nil
}

// Apply records a purge issued elsewhere (another node of the fleet), with
// its original ID and time; a time ahead of this node's clock is taken as
// now, so a skewed clock cannot ban what is fetched after the purge arrives.
// It is idempotent: it returns false and changes nothing when a record with
// the same ID is held. (A record whose bans have all retired is no longer
// held; applying it again only makes the sweeper walk once more, since
// nothing older than it is left to match.) A malformed record returns a
// *ValidationError.
func (ix *Index) Apply(ctx context.Context, rec Record) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := rec.check(); err != nil {
		return false, &ValidationError{Reason: "invalid record: " + err.Error()}
	}
	if now := ix.now(); rec.Time.After(now) {
		rec.Time = now
	}
	rec.Time = rec.Time.UTC().Round(0)
	rec.Bans = slices.Clone(rec.Bans)
	rec.Purged = 0
	_, added, err := ix.add(rec)
	return added, err
}

// Recent returns up to n of the latest purges held in memory (at most
// Config.RecentSize, those loaded at start included), newest first, with
// their Purged counts as of now.
func (ix *Index) Recent(n int) []Record {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n = min(n, len(ix.recent))
	out := make([]Record, 0, max(n, 0))
	for i := range n {
		j := (ix.next - 1 - i + 2*len(ix.recent)) % len(ix.recent)
		out = append(out, ix.recent[j].snapshot())
	}
	return out
}

// Len returns the number of active bans: the targets with a hard or soft
// ban that has not retired, counting a target with both twice.
func (ix *Index) Len() int { return int(ix.active.Load()) }

// Close closes the bans log. Purge and Apply fail with ErrClosed
// afterwards; Check keeps answering. Stop Run before closing.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	if ix.log != nil {
		return ix.log.close()
	}
	return nil
}

// now returns the clock's time as records carry it: UTC, without a
// monotonic reading.
func (ix *Index) now() time.Time { return ix.cfg.Now().UTC().Round(0) }

// add records rec, persisting it first when the Index has a log. A rec
// without a Time is issued now: at the clock's time, or at the newest time
// taken so far if the clock has stepped back behind it, so that purges
// issued here are never out of order. It returns false, changing nothing,
// when a record with rec.ID is held.
func (ix *Index) add(rec Record) (*recState, bool, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil, false, ErrClosed
	}
	if rs, held := ix.records[rec.ID]; held {
		return rs, false, nil
	}
	if rec.Time.IsZero() {
		rec.Time = ix.now()
		if rec.Time.UnixNano() < ix.latest {
			rec.Time = time.Unix(0, ix.latest).UTC()
		}
	}
	rs := &recState{rec: rec}
	if ix.log != nil {
		n, err := ix.log.append(&rec, ix.liveRecords)
		if err != nil {
			return nil, false, err
		}
		rs.size = n
	}
	ix.apply(rs)
	ix.compact() // bans subsumed by this one may have made most of the log garbage
	ix.met.recorded(&rec)
	select {
	case ix.wake <- struct{}{}:
	default:
	}
	return rs, true, nil
}

// apply adds rs's bans to the index and remembers rs. ix.mu is held.
func (ix *Index) apply(rs *recState) {
	at := rs.rec.Time.UnixNano()
	ix.latest = max(ix.latest, at)
	for _, b := range rs.rec.Bans {
		ix.set(b, rs.rec.Soft, at, rs)
	}
	if rs.refs > 0 {
		ix.records[rs.rec.ID] = rs
	} else if ix.log != nil {
		ix.log.dead += rs.size // every ban subsumed by a newer one
	}
	if len(ix.recent) < cap(ix.recent) {
		ix.recent = append(ix.recent, rs)
	} else {
		ix.recent[ix.next] = rs
	}
	ix.next = (ix.next + 1) % cap(ix.recent)
}

// set records a ban on b at time at (Unix nanoseconds) issued by rs, unless
// b's side already holds one as new. ix.mu is held. Check sees the entry
// before its time is set, which it reads as no ban.
func (ix *Index) set(b Ban, soft bool, at int64, rs *recState) {
	e := ix.live[b]
	if e == nil {
		e = &entry{ban: b}
		ix.live[b] = e
		ix.entries[b.Kind].Store(b.Value, e)
		if b.Kind == KindPrefix {
			ix.countFloor(b.Value, 1)
		}
		ix.perKind[b.Kind]++
		ix.kinds.Store(ix.kinds.Load() | kindBit(b.Kind))
	}
	sd := e.side(soft)
	if at <= sd.at.Load() {
		return
	}
	if old := sd.rec.Swap(rs); old != nil {
		ix.release(old)
	} else {
		ix.active.Add(1)
	}
	rs.refs++
	sd.at.Store(at)
}

// retire removes the ban of e's side if it still has time at. ix.mu is
// held.
func (ix *Index) retire(e *entry, soft bool, at int64) bool {
	sd := e.side(soft)
	if sd.at.Load() != at {
		return false
	}
	sd.at.Store(0)
	ix.release(sd.rec.Swap(nil))
	ix.active.Add(-1)
	if e.hard.at.Load() != 0 || e.soft.at.Load() != 0 {
		return true
	}
	delete(ix.live, e.ban)
	ix.entries[e.ban.Kind].Delete(e.ban.Value)
	if e.ban.Kind == KindPrefix {
		ix.countFloor(e.ban.Value, -1)
	}
	if ix.perKind[e.ban.Kind]--; ix.perKind[e.ban.Kind] == 0 {
		ix.kinds.Store(ix.kinds.Load() &^ kindBit(e.ban.Kind))
	}
	return true
}

// release drops one side's reference to rs; a record no side refers to is
// forgotten, and its log bytes become garbage. ix.mu is held.
func (ix *Index) release(rs *recState) {
	if rs.refs--; rs.refs > 0 {
		return
	}
	delete(ix.records, rs.rec.ID)
	if ix.log != nil {
		ix.log.dead += rs.size
	}
}

// countFloor files (delta 1) or unfiles (delta -1) a prefix ban under its
// floor. ix.mu is held.
func (ix *Index) countFloor(prefix string, delta int) {
	f, n := floor(prefix)
	var fs *floorSet
	if v, ok := ix.floors.Load(f); ok {
		fs = v.(*floorSet)
	}
	if fs = fs.with(n, delta); fs == nil {
		ix.floors.Delete(f)
	} else {
		ix.floors.Store(f, fs)
	}
}

// liveRecords returns the records held, oldest first: what a compacted log
// keeps. ix.mu is held.
func (ix *Index) liveRecords() []Record {
	recs := make([]Record, 0, len(ix.records))
	for _, rs := range ix.records {
		recs = append(recs, rs.rec)
	}
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID))
	})
	return recs
}

// compact rewrites the log without garbage when garbage is most of it.
// ix.mu is held. A failure is logged and changes nothing that matters: the
// log stays valid (or, if it may not be, the next append rewrites it), and
// the next retirement tries again.
func (ix *Index) compact() {
	if ix.log == nil || ix.closed || !ix.log.wantsCompaction() {
		return
	}
	if err := ix.log.rewrite(ix.liveRecords()); err != nil {
		ix.logger.Warn("purge: compacting the bans log failed", "err", err)
	}
}
