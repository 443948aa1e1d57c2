package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Warm restart. The index is rebuilt from the directory: LoadWorkers
// goroutines list the fan-out directories, and each file's length (its
// charge) comes from the index snapshot when it vouches for the file (see
// disk_snapshot.go), or else from stat(2). No file is read. Files are
// restored into the eviction policy oldest first (in the snapshot's order,
// else by modification time, the time the object was written), so what was
// written last is evicted last. Then Ready is closed.
//
// Headers are not read before Ready: Get reads and verifies the header of
// every file it opens anyway. After Ready, the same goroutine writes a
// fresh snapshot, then sweeps the headers of the files a clean snapshot did
// not vouch for (all of them after a crash), deleting those that do not
// verify and correcting charges, so garbage left by a crash or a damaged
// disk does not hold budget until evicted; then it rewrites the snapshot
// every SnapshotInterval until Close. Leftovers are cleaned as follows:
//
//   - temporary files (writes in progress at a crash) are deleted before
//     loading: nothing but this instance writes under Dir/tmp, and it names
//     its files with a fresh random prefix;
//   - entries under Dir/objects that are not object files (wrong name, in
//     the wrong fan-out directory, not regular files, shorter than a
//     header) are deleted while loading;
//   - files whose header does not verify, or whose length disagrees with
//     it, are deleted by the sweep, or by whichever Get reaches them first;
//   - bodies that do not verify are deleted when a read finds out (see
//     verifier).

// foundFile is an object file found at start.
type foundFile struct {
	id      fileID
	size    int64
	ino     uint64
	mtime   int64 // UnixNano; zero when known from the snapshot
	order   int   // position in the snapshot; zero when stat'ed
	vouched bool  // known from a clean snapshot: not swept
}

// restoreBatch is how many files the loader restores per hold of the index
// lock, so Gets and commits proceed while a large index loads.
const restoreBatch = 8192

// background is the Disk's goroutine: it loads the index, closes ready,
// sweeps, then writes the snapshot periodically, until ctx is cancelled by
// Close.
func (d *Disk) background(ctx context.Context) {
	defer close(d.bgDone)
	unswept := d.load(ctx)
	if ctx.Err() != nil {
		return
	}
	if d.snapEvery > 0 {
		d.periodicSnapshot()
	}
	if d.snapFound {
		if err := os.Remove(filepath.Join(d.dir, snapshotLoading)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("removing index snapshot", "err", err)
		}
	}
	d.sweep(ctx, unswept)
	close(d.swept)
	if d.snapEvery <= 0 {
		return
	}
	tick := time.NewTicker(d.snapEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.retryStuck()
			d.periodicSnapshot()
		}
	}
}

// periodicSnapshot writes a snapshot that is not clean.
func (d *Disk) periodicSnapshot() {
	if err := d.writeSnapshot(false); err != nil {
		d.met.errors.WithLabelValues(opSnapshot).Inc()
		d.log.Warn("writing index snapshot", "err", err)
	}
}

// load rebuilds the index and closes ready. It returns the files to sweep.
func (d *Disk) load(ctx context.Context) []fileID {
	start := time.Now()
	d.cleanTemp()
	var snap map[fileID]snapEntry
	clean := false
	if d.snapFound {
		snap, clean = d.readSnapshot()
		clean = clean && d.snapMayBeClean
	}
	found, err := d.scan(ctx, snap, clean)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		// Serve what was found; the writes that follow will fail the same
		// way and show in the metrics.
		d.met.errors.WithLabelValues(opRead).Inc()
		d.log.Error("loading index", "err", err)
	}
	found = oldestFirst(found, len(snap))
	d.ix.reserve(len(found))
	for i := 0; i < len(found); i += restoreBatch {
		d.unlinkEvicted(d.ix.restore(found[i:min(i+restoreBatch, len(found))], d.blockSize, nil))
	}
	elapsed := time.Since(start)
	d.met.loadSeconds.Set(elapsed.Seconds())
	objects, bytes := d.ix.stats()
	d.log.Info("disk index loaded", "objects", objects, "bytes", bytes, "took", elapsed,
		"snapshot", snap != nil, "clean", clean)
	d.loaded.Store(true)
	close(d.ready)
	var unswept []fileID
	for _, f := range found {
		if !f.vouched {
			unswept = append(unswept, f.id)
		}
	}
	return unswept
}

// oldestFirst orders found oldest first: the files the snapshot did not
// know by modification time, then the snapshot's in its order (placed by
// position, as sorting a million entries takes a good part of a second).
// snapLen is the number of entries in the snapshot.
func oldestFirst(found []foundFile, snapLen int) []foundFile {
	var unknown []foundFile
	known := make([]foundFile, snapLen)
	for _, f := range found {
		if f.order == 0 {
			unknown = append(unknown, f)
		} else {
			known[f.order-1] = f
		}
	}
	slices.SortFunc(unknown, func(a, b foundFile) int { return cmp.Compare(a.mtime, b.mtime) })
	out := found[:0]
	out = append(out, unknown...)
	for _, f := range known {
		if f.size > 0 { // every file found is at least a header long
			out = append(out, f)
		}
	}
	return out
}

// cleanTemp deletes the temporary files of earlier instances.
func (d *Disk) cleanTemp() {
	entries, err := os.ReadDir(d.tmpDir)
	if err != nil {
		d.log.Warn("listing temporary files", "err", err)
		return
	}
	removed := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), d.nonce+"-") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.tmpDir, e.Name())); err != nil {
			d.log.Warn("removing temporary file", "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		d.log.Info("removed temporary files left by an earlier run", "files", removed)
	}
}

// scan lists every fan-out directory with d.workers goroutines, taking
// what it can from snap (which may be nil; clean if written by Close) and
// stat'ing the rest.
func (d *Disk) scan(ctx context.Context, snap map[fileID]snapEntry, clean bool) ([]foundFile, error) {
	entries, err := os.ReadDir(d.objDir)
	if err != nil {
		return nil, fmt.Errorf("disk tier: list %s: %w", d.objDir, err)
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		results = make([][]foundFile, d.workers)
		errs    = make([]error, d.workers)
	)
	for w := range d.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(entries) {
					return
				}
				var err error
				results[w], err = d.scanDir(entries[i], snap, clean, results[w])
				errs[w] = errors.Join(errs[w], err)
			}
		})
	}
	wg.Wait()
	return slices.Concat(results...), errors.Join(errs...)
}

// scanDir appends the object files of one fan-out directory to found,
// deleting what does not belong there.
func (d *Disk) scanDir(e fs.DirEntry, snap map[fileID]snapEntry, clean bool, found []foundFile) ([]foundFile, error) {
	dir := filepath.Join(d.objDir, e.Name())
	if !e.IsDir() || !isFanOut(e.Name()) {
		return found, d.removeStray(dir, "not a fan-out directory")
	}
	ents, err := readDir(dir)
	if err != nil {
		return found, err
	}
	var root *os.Root // opened for the first file to stat
	defer func() {
		if root != nil {
			root.Close()
		}
	}()
	for _, ent := range ents {
		id, ok := parseFileID(ent.name)
		if !ok || ent.name[:3] != e.Name() {
			d.removeStray(filepath.Join(dir, ent.name), "not an object file")
			continue
		}
		// The snapshot describes this very file if the inode matches (or,
		// where inodes are not listed, if the snapshot is clean).
		if se, ok := snap[id]; ok && (se.ino == ent.ino && ent.ino != 0 || ent.ino == 0 && clean) {
			found = append(found, foundFile{id: id, size: se.size, ino: se.ino, order: se.order, vouched: clean})
			continue
		}
		if root == nil {
			// Through an os.Root, each stat resolves one name relative
			// to the directory (fstatat(2)) rather than the whole path.
			if root, err = os.OpenRoot(dir); err != nil {
				return found, err
			}
		}
		fi, err := root.Lstat(ent.name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // deleted meanwhile is fine
				d.met.errors.WithLabelValues(opRead).Inc()
			}
			continue
		}
		if !fi.Mode().IsRegular() || fi.Size() < fixedHeaderLen {
			d.removeStray(filepath.Join(dir, ent.name), "not an object file")
			continue
		}
		found = append(found, foundFile{id: id, size: fi.Size(), ino: fileIno(fi), mtime: fi.ModTime().UnixNano()})
	}
	return found, nil
}

// removeStray deletes path, which has no business under Dir/objects.
func (d *Disk) removeStray(path, why string) error {
	d.log.Warn("removing stray file", "path", path, "why", why)
	if err := os.RemoveAll(path); err != nil {
		d.met.errors.WithLabelValues(opDelete).Inc()
		return err
	}
	return nil
}

// isFanOut reports whether name is a fan-out directory's: three lowercase
// hex digits.
func isFanOut(name string) bool {
	if len(name) != 3 {
		return false
	}
	for _, c := range []byte(name) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// sweep reads the headers of the files ids (unless written since),
// deleting those that do not verify and correcting the charges of those
// whose length the snapshot had wrong.
func (d *Disk) sweep(ctx context.Context, ids []fileID) {
	checked := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if e, _, ok := d.ix.lookup(id, false); !ok || e.verified {
			continue
		}
		st := &d.stripes[id[0]]
		st.RLock()
		f, h, m, ino, err := d.openFile(id, os.O_RDONLY)
		var evicted []fileID
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Under the stripe, so no commit of a new file comes between.
			d.ix.remove(id)
		case err != nil: // counted or dropped below
		case keyID(m.Key) != id:
			f.Close()
			err = fmt.Errorf("%w: misplaced file of key %q", errCorrupt, m.Key)
		default:
			f.Close()
			evicted = d.ix.resize(id, ino, h.fileSize(), d.blockSize)
		}
		st.RUnlock()
		d.unlinkEvicted(evicted)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case isCorrupt(err):
			d.drop(id, ino, err)
		case err != nil:
			d.met.errors.WithLabelValues(opRead).Inc()
		}
		checked++
	}
	d.log.Debug("swept headers", "files", checked)
}

// readMeta reads the metadata in the header of id's file. A missing file is
// ErrNotFound, and so is a corrupt one, which is dropped.
func (d *Disk) readMeta(id fileID) (Meta, error) {
	st := &d.stripes[id[0]]
	st.RLock()
	f, _, m, ino, err := d.openFile(id, os.O_RDONLY)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Under the stripe, so no commit of a new file comes between.
		d.ix.remove(id)
	case err == nil:
		f.Close()
		if keyID(m.Key) != id {
			err = fmt.Errorf("%w: misplaced file of key %q", errCorrupt, m.Key)
		}
	}
	st.RUnlock()
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, fs.ErrNotExist):
		return m, ErrNotFound
	case isCorrupt(err):
		d.drop(id, ino, err)
		return m, ErrNotFound
	}
	d.met.errors.WithLabelValues(opRead).Inc()
	return m, fmt.Errorf("disk tier: read header of %s: %w", id, err)
}

// Walk calls fn with the metadata of every object, read from the file
// headers, once the index is loaded (it waits for Ready). Objects committed
// or deleted while Walk runs may or may not be seen. fn may call the tier's
// other methods.
//
// Walk skips only files deleted meanwhile and corrupt files (which it
// drops): those objects cannot be served. A file it cannot read (an I/O
// error, too many open files) holds an object that may still be served, so
// Walk reads on through the others, then returns an error naming how many
// it missed and the first error: a caller such as a purge sweeper must not
// take the walk as complete.
func (d *Disk) Walk(ctx context.Context, fn func(*Meta) error) error {
	select {
	case <-d.ready:
	case <-d.bgDone:
		select {
		case <-d.ready:
		default:
			return ErrClosed // closed before the index loaded
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	missed := 0
	var first error
	for _, id := range d.ix.ids() {
		if err := ctx.Err(); err != nil {
			return err
		}
		leave, err := d.enter()
		if err != nil {
			return err
		}
		m, err := d.readMeta(id)
		leave()
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			if missed++; first == nil {
				first = err
			}
			continue
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
	if missed > 0 {
		return fmt.Errorf("disk tier: walk incomplete: %d objects could not be read: %w", missed, first)
	}
	return nil
}
