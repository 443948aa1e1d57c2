package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DiskConfig configures a Disk tier. Dir is required; the other fields have
// defaults.
type DiskConfig struct {
	// Dir is the directory the tier owns: it keeps objects under
	// Dir/objects, writes in progress under Dir/tmp, and holds an advisory
	// lock on Dir/lock while open. It is created if missing. Other entries
	// of Dir are left alone.
	Dir string
	// MaxBytes bounds the space the objects take, counted as the file
	// system allocates it: each file (header, body and chunk table) rounded
	// up to BlockSize. Writes in progress are not counted. Zero means 10 GiB.
	MaxBytes int64
	// MaxObjectSize bounds one object's body. Larger objects are refused
	// with ErrTooLarge. Zero means MaxBytes/8; it is capped at MaxBytes.
	MaxObjectSize int64
	// BlockSize is the allocation unit file sizes are rounded up to. Zero
	// means the block size the file system reports, or 4 KiB.
	BlockSize int64
	// LoadWorkers is how many goroutines list the directory at start. Zero
	// means 8: listing waits on the disk more than on the CPU.
	LoadWorkers int
	// SnapshotInterval is how often the index snapshot is rewritten while
	// running (see disk_snapshot.go), so that a start after a crash stats
	// only the files written since; Close writes one too. Zero means 5
	// minutes; negative means only Close writes it.
	SnapshotInterval time.Duration
	// Logger receives the tier's warnings (corrupt objects dropped, I/O
	// errors) and a line when the index is loaded. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the tier's metrics (outpost_disk_*). Nil means
	// they are not registered. Close unregisters them.
	Registerer prometheus.Registerer
}

// Disk is a storage tier of files in a directory, bounded by
// DiskConfig.MaxBytes, with S3-FIFO eviction (see package s3fifo). It is
// safe for concurrent use, and survives restarts: NewDisk rebuilds its index
// from the directory in a goroutine (see disk_load.go), and Ready is closed
// once that is done.
//
// Each object is one file, named after a hash of its key, holding a
// versioned header (every Meta field, checksummed) and the body
// (checksummed in 1 MiB chunks); see disk_format.go. Commit writes the
// header and renames the file into place, so a crash leaves at worst a
// temporary file, which the next start removes. Nothing read back is trusted
// before it verifies: a file whose header fails its checksum or whose length
// disagrees with it is deleted when opened, and a body written by an earlier
// process is checked chunk by chunk the first time each chunk is read, so a
// torn or bit-rotted object is dropped (outpost_disk_corrupt_total) and
// never served. Objects expose their file to WriteRange, so a copy to an
// http.ResponseWriter of a TCP connection uses sendfile(2).
//
// While the index loads, Get, Update and Delete work on the files directly
// (a key's file name is known without the index) and Put commits as usual;
// only the byte budget is enforced late, once the index holds every file.
// Walk waits for the index. Once loaded, the index is the list of objects
// (see diskIndex): a file leaves it only once unlinked, and Get and Update
// treat a file outside it as missing, and delete it.
//
// I/O errors are returned wrapped with the operation and key, and counted in
// outpost_disk_errors_total; the tier never panics on them. Disk never
// fsyncs: a power loss may lose recent objects or leave damaged files, which
// the checksums catch.
type Disk struct {
	dir, objDir, tmpDir string
	maxBytes            int64
	maxObject           int64
	blockSize           int64
	workers             int
	log                 *slog.Logger
	met                 *diskMetrics
	ix                  *diskIndex
	dirLock             *os.File // holds the flock on dir/lock
	nonce               string   // prefix of this instance's temporary files
	snapEvery           time.Duration
	snapFound           bool // an index snapshot was claimed for loading
	snapMayBeClean      bool // ...and its clean mark may be honoured
	tmpSeq              atomic.Uint64

	// stripes serialize what changes a file or its index entry (commit,
	// delete, update, eviction) against readers of the same file (Get's
	// header read), by the first byte of the file id. Lock order: a stripe,
	// then ix.mu; never two stripes.
	stripes [256]sync.RWMutex

	// life makes Close wait for operations in progress: each holds a read
	// lock, Close takes the write lock and sets closed.
	life   sync.RWMutex
	closed bool

	ready  chan struct{} // closed once the index is loaded
	loaded atomic.Bool   // set just before ready is closed: the index lists every file
	swept  chan struct{} // closed once the loaded files' headers are swept
	bgDone chan struct{} // closed when the background goroutine returns
	stopBg context.CancelFunc

	chunkBufs sync.Pool // *[]byte of chunkSize, for verification
	copyBufs  sync.Pool // *[]byte of 32 KiB, for WriteRange without ReadFrom
	headBufs  sync.Pool // *[]byte of headerProbe, for header reads

	fault atomic.Pointer[func(op string) error] // failure injection, tests only
}

var (
	_ Tier        = (*Disk)(nil)
	_ Walker      = (*Disk)(nil)
	_ RangeWriter = (*diskObject)(nil)
)

// NewDisk opens the disk tier in cfg.Dir, creating the directory if needed,
// and starts a goroutine, which Close stops, that loads the index, then
// sweeps what a crash may have left and writes the index snapshot
// periodically. It fails
// when the directory cannot be created or locked (another Disk has it open),
// or a config field is invalid.
func NewDisk(cfg DiskConfig) (*Disk, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("disk tier: Dir is empty")
	case cfg.MaxBytes < 0:
		return nil, fmt.Errorf("disk tier: MaxBytes %d is negative", cfg.MaxBytes)
	case cfg.MaxObjectSize < 0:
		return nil, fmt.Errorf("disk tier: MaxObjectSize %d is negative", cfg.MaxObjectSize)
	case cfg.BlockSize < 0:
		return nil, fmt.Errorf("disk tier: BlockSize %d is negative", cfg.BlockSize)
	case cfg.LoadWorkers < 0:
		return nil, fmt.Errorf("disk tier: LoadWorkers %d is negative", cfg.LoadWorkers)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 10 << 30
	}
	if cfg.MaxObjectSize == 0 {
		cfg.MaxObjectSize = max(cfg.MaxBytes/8, 1)
	}
	cfg.MaxObjectSize = min(cfg.MaxObjectSize, cfg.MaxBytes)
	if cfg.LoadWorkers == 0 {
		cfg.LoadWorkers = 8
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Disk{
		dir:       cfg.Dir,
		objDir:    filepath.Join(cfg.Dir, "objects"),
		tmpDir:    filepath.Join(cfg.Dir, "tmp"),
		maxBytes:  cfg.MaxBytes,
		maxObject: cfg.MaxObjectSize,
		workers:   cfg.LoadWorkers,
		snapEvery: cfg.SnapshotInterval,
		log:       cfg.Logger.With("tier", "disk", "dir", cfg.Dir),
		ix:        newDiskIndex(cfg.MaxBytes),
		ready:     make(chan struct{}),
		swept:     make(chan struct{}),
		bgDone:    make(chan struct{}),
		chunkBufs: sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }},
		copyBufs:  sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }},
		headBufs:  sync.Pool{New: func() any { b := make([]byte, headerProbe); return &b }},
	}
	for _, dir := range []string{d.dir, d.objDir, d.tmpDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("disk tier: %w", err)
		}
	}
	d.blockSize = cfg.BlockSize
	if d.blockSize == 0 {
		d.blockSize = fsBlockSize(d.dir)
	}
	if d.blockSize <= 0 {
		d.blockSize = 4096
	}
	lock, err := lockDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("disk tier: %w", err)
	}
	d.dirLock = lock
	d.snapFound, d.snapMayBeClean = d.claimSnapshot()
	var nonce [6]byte
	rand.Read(nonce[:])
	d.nonce = hex.EncodeToString(nonce[:])
	if d.met, err = newDiskMetrics(cfg.Registerer, d); err != nil {
		d.unlockDir()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopBg = cancel
	go d.background(ctx)
	return d, nil
}

// Ready returns a channel closed once the index has been loaded from the
// directory. Until then the byte budget is not enforced and Walk waits. A
// Close that comes first stops the loading, and the channel stays open.
func (d *Disk) Ready() <-chan struct{} { return d.ready }

// DiskStats is a snapshot of a Disk's usage.
type DiskStats struct {
	// Objects is the number of objects in the index.
	Objects int
	// Bytes is the space they take, in file-system blocks.
	Bytes int64
	// MaxBytes is the budget.
	MaxBytes int64
}

// Stats returns the tier's current usage. While the index loads it counts
// only the files loaded so far.
func (d *Disk) Stats() DiskStats {
	n, b := d.ix.stats()
	return DiskStats{Objects: n, Bytes: b, MaxBytes: d.maxBytes}
}

// Close stops the background goroutine (loading the index, if still
// running) and waits for it and for operations in progress, unregisters the
// metrics, writes a clean snapshot of the index for the next start (see
// disk_snapshot.go) and releases the directory. Afterwards the tier's methods fail with ErrClosed. Objects and
// writers already handed out keep reading until closed themselves, but a
// Commit after Close fails. Close is safe to call more than once.
func (d *Disk) Close() error {
	d.stopBg()
	<-d.bgDone
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.met.unregister()
	var err error
	select {
	case <-d.ready:
		// Operations are over (the life lock is held): the index is what
		// the directory holds, and the next start can skip the stat calls.
		if err = d.writeSnapshot(true); err != nil {
			err = fmt.Errorf("disk tier: write index snapshot: %w", err)
		}
	default: // closed while loading: the next start scans the directory
	}
	return errors.Join(err, d.unlockDir())
}

func (d *Disk) unlockDir() error {
	if d.dirLock == nil {
		return nil
	}
	if err := d.dirLock.Close(); err != nil {
		return fmt.Errorf("disk tier: unlock %s: %w", d.dir, err)
	}
	return nil
}

// enter starts an operation: it fails with ErrClosed after Close, and
// otherwise holds Close off until the returned func is called.
func (d *Disk) enter() (func(), error) {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return nil, ErrClosed
	}
	return d.life.RUnlock, nil
}

// Put starts writing an object under m.Key into a temporary file. It fails
// with ErrTooLarge when m.Size exceeds MaxObjectSize, or the file would not
// fit MaxBytes (a body of unknown size fails at the Write that crosses
// either), or the metadata exceeds 1 MiB, and with an I/O error when the
// file cannot be created.
func (d *Disk) Put(_ context.Context, m Meta) (Writer, error) {
	leave, err := d.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	if m.Size > d.maxObject {
		return nil, fmt.Errorf("disk tier: put %s (%d bytes): %w", m.Key, m.Size, ErrTooLarge)
	}
	w := &diskWriter{d: d, id: keyID(m.Key), meta: m.Clone(), limit: d.maxObject}
	head := appendMeta(make([]byte, fixedHeaderLen, fixedHeaderLen+512), &w.meta)
	w.metaLen = len(head) - fixedHeaderLen
	if w.metaLen > maxMetaLen {
		return nil, fmt.Errorf("disk tier: put %s: metadata of %d bytes: %w", m.Key, w.metaLen, ErrTooLarge)
	}
	w.area = headerArea(w.metaLen)
	if m.Size >= 0 && !d.fits(w.area, m.Size) {
		// It would be evicted as soon as committed.
		return nil, fmt.Errorf("disk tier: put %s (%d bytes): file over the %d-byte budget: %w", m.Key, m.Size, d.maxBytes, ErrTooLarge)
	}
	w.head = padTo(head, w.area)
	if w.f, w.tmp, err = d.createTemp(); err != nil {
		d.met.errors.WithLabelValues(opCreate).Inc()
		return nil, fmt.Errorf("disk tier: put %s: %w", m.Key, err)
	}
	w.chunk.Reset()
	return w, nil
}

// createTemp creates a new temporary file, recreating the directory if
// something removed it.
func (d *Disk) createTemp() (*os.File, string, error) {
	if err := d.inject(opCreate); err != nil {
		return nil, "", err
	}
	name := filepath.Join(d.tmpDir, fmt.Sprintf("%s-%d", d.nonce, d.tmpSeq.Add(1)))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(d.tmpDir, 0o700); err != nil {
			return nil, "", err
		}
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	return f, name, err
}

// install renames the temporary file tmp of a committed object into place
// as the file of id and records it in the index, then deletes what the
// index evicts to fit it.
func (d *Disk) install(id fileID, tmp string, ino uint64, size int64) error {
	st := &d.stripes[id[0]]
	st.Lock()
	path := d.path(id)
	err := os.Rename(tmp, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	var evicted []fileID
	if err == nil {
		evicted = d.ix.add(id, diskEntry{ino: ino, size: size, verified: true}, roundUp(size, d.blockSize), nil)
	}
	st.Unlock()
	d.unlinkEvicted(evicted)
	return err
}

// unlinkEvicted deletes the files of ids the index evicted, unless a commit
// has put a new file under the same id since. A file that cannot be
// deleted stays listed by Walk (see diskIndex) and is tried again later.
func (d *Disk) unlinkEvicted(ids []fileID) {
	for _, id := range ids {
		st := &d.stripes[id[0]]
		st.Lock()
		err := d.unlinkUnindexed(id)
		st.Unlock()
		d.met.evictions.Inc()
		if err != nil {
			d.log.Warn("evict", "file", id.String(), "err", err)
		}
	}
}

// unlinkUnindexed deletes the file of id unless the index records it (a
// commit put a new file there since the caller decided to delete), and
// forgets id once the file is gone. A file that cannot be deleted is
// recorded as stuck, so Walk lists it and the deletion is tried again. The
// caller holds the id's stripe.
func (d *Disk) unlinkUnindexed(id fileID) error {
	if d.ix.has(id) {
		return nil
	}
	err := d.inject(opDelete)
	if err == nil {
		err = os.Remove(d.path(id))
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.ix.stick(id)
		d.met.errors.WithLabelValues(opDelete).Inc()
		return err
	}
	d.ix.unstick(id)
	return nil
}

// retryStuck tries again to delete the files whose deletion failed after
// they were evicted or found outside the index.
func (d *Disk) retryStuck() {
	for _, id := range d.ix.stuckIDs() {
		st := &d.stripes[id[0]]
		st.Lock()
		err := d.unlinkUnindexed(id)
		st.Unlock()
		if err != nil {
			d.log.Warn("evict", "file", id.String(), "err", err)
		}
	}
}

// Delete removes the object under key, if any. A missing key is not an
// error. The file is deleted before its index entry, so a file that cannot
// be deleted is an error and stays in the index: Walk still lists it, and
// a later Delete tries again.
func (d *Disk) Delete(_ context.Context, key string) error {
	leave, err := d.enter()
	if err != nil {
		return err
	}
	defer leave()
	id := keyID(key)
	st := &d.stripes[id[0]]
	st.Lock()
	if d.loaded.Load() && !d.ix.listed(id) {
		// Once loaded, the index lists every file (stuck ones too): there
		// is nothing to remove, and no need to ask the file system.
		st.Unlock()
		return nil
	}
	if err = d.inject(opDelete); err == nil {
		err = os.Remove(d.path(id))
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		d.ix.remove(id)
		err = nil
	}
	st.Unlock()
	if err != nil {
		d.met.errors.WithLabelValues(opDelete).Inc()
		return fmt.Errorf("disk tier: delete %s: %w", key, err)
	}
	return nil
}

// fits reports whether the file of a body of size bytes, its header area
// area bytes, fits the byte budget.
func (d *Disk) fits(area, size int64) bool {
	h := fileHeader{area: area, size: size}
	return roundUp(h.fileSize(), d.blockSize) <= d.maxBytes
}

// path returns the file name of id: fanned out over 4096 directories by its
// first three hex digits, so no directory grows past a few thousand entries
// for a few million objects.
func (d *Disk) path(id fileID) string {
	name := id.String()
	return filepath.Join(d.objDir, name[:3], name)
}

// inject returns the failure a test installed for op, if any.
func (d *Disk) inject(op string) error {
	if f := d.fault.Load(); f != nil {
		return (*f)(op)
	}
	return nil
}
