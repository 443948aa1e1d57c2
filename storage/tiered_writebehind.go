package storage

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Write-behind. An object that fits the memory tier is written to memory
// alone while it arrives, and Commit returns once memory holds it: the
// disk copy is written afterwards, off the request path, by a goroutine
// that takes queued objects in turn and writes each as the disk tier
// writes any object (a temporary file, its chunk checksums, a rename into
// place). A crash loses what was still queued, never more: the disk's
// guarantees are those of Disk, a half-written file is never served.
//
// Until its file is in place a queued object is pending: Get serves it
// from its body in memory (which the queue keeps referenced, even after
// the memory tier let the object go), Walk lists it, Update changes the
// metadata the file will be written with, and Delete or a newer Commit of
// the key cancels it. The goroutine checks and installs a file under the
// key's generation stripe, the lock Commit, Update and Delete hold, so a
// purge that returned is never undone by a write that was in flight.
//
// The queue is bounded in bytes (TieredConfig.WriteBehindBytes): when the
// disk falls behind, an object that does not fit is not written to disk
// (outpost_tiered_write_behind_dropped_total), and Tiered removes the older
// disk copy of its key, as for any Commit that reached memory only. A write
// that fails does the same and counts as a disk failure.

// wbJob is an object waiting for its disk copy.
type wbJob struct {
	key      string
	entry    *memEntry // what the file is written from; Update replaces it
	bytes    int64     // the body's pages, counted against the queue's bound
	canceled bool      // a Delete or a newer Commit came; nothing to install
}

// writeBehind is Tiered's queue of objects waiting for their disk copy.
// Its goroutines run only while there is something to write: add starts
// one (up to workers) when it queues a job, and a goroutine that finds the
// queue empty exits, so an idle Tiered runs none.
type writeBehind struct {
	write   func(*wbJob) // writes a job's disk copy
	workers int          // most goroutines writing at once

	mu      sync.Mutex
	idle    *sync.Cond // the queue emptied and no job is being written
	queue   []*wbJob
	pending map[string]*wbJob // the key's latest job, queued or being written
	bytes   int64             // bodies of the jobs in pending
	max     int64
	busy    int // jobs being written
	running int // goroutines running
	closed  bool
	done    sync.WaitGroup

	queued  prometheus.GaugeFunc
	written prometheus.Counter
	dropped prometheus.Counter
}

func newWriteBehind(max int64, workers int, write func(*wbJob)) *writeBehind {
	wb := &writeBehind{pending: make(map[string]*wbJob), max: max, workers: workers, write: write}
	wb.idle = sync.NewCond(&wb.mu)
	wb.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_tiered_write_behind_bytes",
		Help: "Bodies committed to memory and waiting for their disk copy.",
	}, func() float64 {
		wb.mu.Lock()
		defer wb.mu.Unlock()
		return float64(wb.bytes)
	})
	wb.written = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_tiered_write_behind_written_total",
		Help: "Objects whose disk copy the write-behind queue wrote.",
	})
	wb.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_tiered_write_behind_dropped_total",
		Help: "Objects kept in memory only: the write-behind queue was full, or their disk write failed.",
	})
	return wb
}

func (wb *writeBehind) collectors() []prometheus.Collector {
	return []prometheus.Collector{wb.queued, wb.written, wb.dropped}
}

// run writes queued jobs until the queue is empty. add starts it.
func (wb *writeBehind) run() {
	defer wb.done.Done()
	for {
		j := wb.next()
		if j == nil {
			return
		}
		wb.write(j)
		wb.finish(j)
	}
}

// next returns a job to write, or nil when the queue is empty, and then
// counts the calling goroutine out.
func (wb *writeBehind) next() *wbJob {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	for len(wb.queue) > 0 {
		j := wb.queue[0]
		wb.queue[0] = nil
		wb.queue = wb.queue[1:]
		if !j.canceled {
			wb.busy++
			return j
		}
	}
	wb.running--
	if wb.busy == 0 {
		wb.idle.Broadcast()
	}
	return nil
}

// finish ends the writing of j: it stops being pending, and its body is
// released.
func (wb *writeBehind) finish(j *wbJob) {
	wb.mu.Lock()
	wb.busy--
	wb.forget(j)
	if len(wb.queue) == 0 && wb.busy == 0 {
		wb.idle.Broadcast()
	}
	wb.mu.Unlock()
}

// forget takes j out of pending, if there, and releases its body. The
// caller holds wb.mu.
func (wb *writeBehind) forget(j *wbJob) {
	if wb.pending[j.key] == j {
		delete(wb.pending, j.key)
		wb.bytes -= j.bytes
		j.entry.body.release()
	}
}

// add queues e's disk copy, canceling an older job of its key, and reports
// false when the queue has no room or is closed (the older job is canceled
// all the same). The caller holds e's key's generation stripe.
func (wb *writeBehind) add(e *memEntry) bool {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.cancelLocked(e.meta.Key)
	n := int64(e.body.pages) * 4096
	if wb.closed || wb.bytes+n > wb.max {
		return false
	}
	e.body.refs.Add(1) // the queue's, released by forget
	j := &wbJob{key: e.meta.Key, entry: e, bytes: n}
	wb.pending[j.key] = j
	wb.bytes += n
	wb.queue = append(wb.queue, j)
	if wb.running < wb.workers && wb.running <= len(wb.queue) {
		wb.running++
		wb.done.Add(1)
		go wb.run()
	}
	return true
}

// cancel cancels key's pending job, if any, reporting whether there was
// one. The caller holds key's generation stripe.
func (wb *writeBehind) cancel(key string) bool {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.cancelLocked(key)
}

func (wb *writeBehind) cancelLocked(key string) bool {
	j, ok := wb.pending[key]
	if ok {
		j.canceled = true
		wb.forget(j)
	}
	return ok
}

// get returns key's pending object, holding a reference to its body.
func (wb *writeBehind) get(key string) (*memObject, bool) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	j, ok := wb.pending[key]
	if !ok {
		return nil, false
	}
	j.entry.body.refs.Add(1)
	return &memObject{e: j.entry}, true
}

// update gives key's pending job the metadata m (its body kept), reporting
// whether there was one. The caller holds key's generation stripe.
func (wb *writeBehind) update(m Meta) bool {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	j, ok := wb.pending[m.Key]
	if ok {
		e := &memEntry{meta: m.Clone(), body: j.entry.body}
		e.meta.Size = j.entry.meta.Size
		j.entry = e
	}
	return ok
}

// current returns j's entry and reports whether j is still the job to
// install. The caller holds j's key's generation stripe.
func (wb *writeBehind) current(j *wbJob) (*memEntry, bool) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return j.entry, !j.canceled
}

// metas returns the metadata of the pending objects.
func (wb *writeBehind) metas() []*Meta {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	out := make([]*Meta, 0, len(wb.pending))
	for _, j := range wb.pending {
		out = append(out, &j.entry.meta)
	}
	return out
}

// flush waits until every job queued so far is written or dropped.
func (wb *writeBehind) flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		wb.mu.Lock()
		defer wb.mu.Unlock()
		wb.idle.Broadcast()
	})
	defer stop()
	wb.mu.Lock()
	defer wb.mu.Unlock()
	for len(wb.queue) > 0 || wb.busy > 0 || wb.running > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		wb.idle.Wait()
	}
	return nil
}

// close stops taking jobs and waits until the queued ones are written.
func (wb *writeBehind) close() {
	wb.mu.Lock()
	wb.closed = true
	wb.mu.Unlock()
	wb.done.Wait()
}

// writeJob writes j's disk copy: the file is written outside any lock,
// then installed under the key's generation stripe unless j was canceled
// meanwhile. A failure leaves memory's copy the only one, as for a Commit
// that reached memory only.
func (t *Tiered) writeJob(j *wbJob) {
	ctx := context.Background()
	e, _ := t.wb.current(j)
	if !t.diskUsable() {
		t.dropPending(ctx, j, nil)
		return
	}
	w, err := t.disk.Put(ctx, e.meta)
	if err == nil {
		err = e.body.each(0, e.meta.Size, func(p []byte) error {
			_, err := w.Write(p)
			return err
		})
	}
	if err != nil {
		if w != nil {
			w.Close()
		}
		t.dropPending(ctx, j, err)
		return
	}
	defer w.Close()
	if t.installHook != nil {
		t.installHook()
	}
	if t.installJob(ctx, j, e, w) {
		t.retryStale(ctx)
	}
}

// installJob commits w, the file written from e for j, unless j was
// canceled, and reports whether it did.
func (t *Tiered) installJob(ctx context.Context, j *wbJob, e *memEntry, w Writer) bool {
	gs := t.genStripe(j.key)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	cur, ok := t.wb.current(j)
	if !ok {
		w.Abort() // deleted or replaced meanwhile
		return false
	}
	if err := w.Commit(); err != nil {
		t.diskFailed(err)
		t.wb.dropped.Inc()
		t.dropOlderDiskCopyAfterWrite(ctx, j.key)
		return false
	}
	t.diskWrote()
	t.stale.remove(j.key) // the new file replaced any stale one
	if cur != e {
		// An Update came while the file was written from the older metadata.
		if err := t.disk.Update(ctx, cur.meta); err != nil {
			t.diskFailed(err)
			t.dropOlderDiskCopyAfterWrite(ctx, j.key)
		}
	}
	t.wb.written.Inc()
	return true
}

// dropPending gives up j's disk write: the older disk copy of its key, if
// any, must not be served once memory lets the object go.
func (t *Tiered) dropPending(ctx context.Context, j *wbJob, err error) {
	t.diskFailed(err)
	gs := t.genStripe(j.key)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if _, ok := t.wb.current(j); !ok {
		return
	}
	t.wb.dropped.Inc()
	t.dropOlderDiskCopyAfterWrite(ctx, j.key)
}

// dropOlderDiskCopyAfterWrite removes key's disk copy once its newer
// version could not be written there. When even that fails and the key
// cannot be remembered as stale (see dropOlderDiskCopy), memory lets the
// newer version go, so that the tier serves the older one consistently
// rather than flip back to it later. The caller holds key's stripe.
func (t *Tiered) dropOlderDiskCopyAfterWrite(ctx context.Context, key string) {
	if err := t.dropOlderDiskCopy(ctx, key); err != nil {
		t.log.Error("kept the older disk copy", "key", key, "err", err)
		t.mem.Delete(ctx, key)
		t.wb.cancel(key)
	}
}

// queueOnCommit queues the disk copy of e, just committed to memory, when
// DiskMinUses allows, and reports whether it did; otherwise the caller
// removes the older disk copy. The caller holds the key's stripe.
func (t *Tiered) queueOnCommit(e *memEntry) bool {
	if t.diskMinUses > 1 && !e.seen {
		t.wb.cancel(e.meta.Key)
		return false
	}
	if !t.wb.add(e) {
		t.wb.dropped.Inc() // the queue is full
		return false
	}
	e.disk.Store(true)
	return true
}

// admitOnHit queues the disk copy of e, a memory hit not written to disk
// yet, if memory still holds it (its older disk copy, if any, was removed
// when it was committed).
func (t *Tiered) admitOnHit(ctx context.Context, e *memEntry) {
	if !t.diskUsable() {
		return
	}
	gs := t.genStripe(e.meta.Key)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if cur, ok := t.mem.current(e.meta.Key); !ok || cur != e || e.disk.Load() {
		return
	}
	if t.wb.add(e) {
		e.disk.Store(true)
	} else {
		t.wb.dropped.Inc()
	}
}
