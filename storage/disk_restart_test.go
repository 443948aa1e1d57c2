package storage_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const chunk = 1 << 20 // the disk tier's checksummed chunk

func TestDiskRestartKeepsObjects(t *testing.T) {
	sizes := []int{0, 1, 4095, chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk + 17}
	d := newDisk(t, storage.DiskConfig{})
	for i, n := range sizes {
		store(t, d, meta(keyN(i), int64(n)), randomBody(uint64(i), n))
	}
	unknown := randomBody(99, 2*chunk+5)
	store(t, d, meta("unknown-length", -1), unknown)

	d = reopenDisk(t, d, storage.DiskConfig{})
	assert.Equal(t, len(sizes)+1, d.Stats().Objects, "objects in the index after restart")
	for i, n := range sizes {
		key := keyN(i)
		assert.False(t, storage.DiskVerified(d, key) && n > 0, "%d-byte body verified before being read", n)
		assert.Equal(t, randomBody(uint64(i), n), mustGetBody(t, d, key), "%d-byte body after restart", n)
		assert.True(t, storage.DiskVerified(d, key), "%d-byte body not marked verified after a whole read", n)
	}
	assert.Equal(t, unknown, mustGetBody(t, d, "unknown-length"))
}

func TestDiskRestartPartialReadsVerifyOnlyWhatTheyRead(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	body := randomBody(7, 4*chunk)
	store(t, d, meta("video", int64(len(body))), body)
	d = reopenDisk(t, d, storage.DiskConfig{})
	o, err := d.Get(context.Background(), "video")
	require.NoError(t, err)
	defer o.Close()
	p := make([]byte, 100)
	_, err = o.ReadAt(p, 2*chunk+10)
	require.NoError(t, err)
	assert.Equal(t, body[2*chunk+10:2*chunk+110], p)
	assert.False(t, storage.DiskVerified(d, "video"), "marked verified after reading two of four chunks")
	readBody(t, o)
	assert.True(t, storage.DiskVerified(d, "video"), "not marked verified after reading every chunk")
}

// damage is a way a crash, a bad disk or an operator can leave a file.
type damage struct {
	name string
	// size of the body stored under "victim" before the damage.
	size int
	// apply damages path, the file of "victim"; area is the body's offset.
	apply func(t *testing.T, path string, area int64)
	// wantCorrupt is the outpost_disk_corrupt_total label counted ("" when
	// the loader removes the file before anything reads it).
	wantCorrupt string
	// readsFirst: the object opens and the first chunk reads back; the
	// damage shows on reading further.
	readsFirst bool
}

var damages = []damage{
	{name: "body byte flipped", size: 5000, wantCorrupt: "body",
		apply: func(t *testing.T, p string, area int64) { flip(t, p, area+4000) }},
	{name: "meta byte flipped", size: 5000, wantCorrupt: "header",
		apply: func(t *testing.T, p string, area int64) { flip(t, p, 60) }},
	{name: "fixed header byte flipped", size: 5000, wantCorrupt: "header",
		apply: func(t *testing.T, p string, area int64) { flip(t, p, 20) }},
	{name: "magic overwritten", size: 5000, wantCorrupt: "header",
		apply: func(t *testing.T, p string, area int64) { writeAt(t, p, 0, []byte("JUNK")) }},
	{name: "truncated in the body", size: 5000, wantCorrupt: "size",
		apply: func(t *testing.T, p string, area int64) { require.NoError(t, os.Truncate(p, area+2000)) }},
	{name: "truncated in the header", size: 5000, wantCorrupt: "header",
		apply: func(t *testing.T, p string, area int64) { require.NoError(t, os.Truncate(p, 100)) }},
	{name: "truncated to nothing", size: 5000,
		apply: func(t *testing.T, p string, area int64) { require.NoError(t, os.Truncate(p, 0)) }},
	{name: "garbage appended", size: 5000, wantCorrupt: "size",
		apply: func(t *testing.T, p string, area int64) { appendTo(t, p, []byte("garbage")) }},
	{name: "chunk table byte flipped", size: 3*chunk + 1, wantCorrupt: "body",
		apply: func(t *testing.T, p string, area int64) { flip(t, p, area+3*chunk+1+9) }},
	{name: "second chunk byte flipped", size: 3*chunk + 1, wantCorrupt: "body", readsFirst: true,
		apply: func(t *testing.T, p string, area int64) { flip(t, p, area+chunk+5) }},
	{name: "last chunk truncated", size: 3*chunk + 1, wantCorrupt: "size",
		apply: func(t *testing.T, p string, area int64) { require.NoError(t, os.Truncate(p, area+3*chunk)) }},
	{name: "zeroed as after a power loss", size: 5000, wantCorrupt: "header",
		apply: func(t *testing.T, p string, area int64) { writeAt(t, p, 0, make([]byte, area+5000)) }},
}

// TestDiskDamagedObjectsAreDroppedNotServed damages a committed file while
// the tier is down, and checks that after a restart the object is a miss
// (or a failed read past what verified), its file is deleted, and the
// damage is counted, while an undamaged neighbour is served.
func TestDiskDamagedObjectsAreDroppedNotServed(t *testing.T) {
	for _, tt := range damages {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDisk(t, storage.DiskConfig{Dir: dir})
			body := randomBody(1, tt.size)
			store(t, d, meta("victim", int64(len(body))), body)
			store(t, d, meta("neighbour", 1000), randomBody(2, 1000))
			area := storage.DiskHeaderArea(d, "victim")
			path := storage.DiskPath(d, "victim")
			require.NoError(t, d.Close())
			tt.apply(t, path, area)

			reg := prometheus.NewPedanticRegistry()
			d = newDisk(t, storage.DiskConfig{Dir: dir, Registerer: reg})
			if tt.readsFirst {
				o, err := d.Get(context.Background(), "victim")
				require.NoError(t, err, "Get of an object damaged past its first chunk")
				defer o.Close()
				p := make([]byte, chunk)
				n, err := o.ReadAt(p, 0)
				require.NoError(t, err, "reading the undamaged first chunk")
				assert.Equal(t, body[:n], p[:n])
				n, err = o.ReadAt(p, chunk)
				assert.Error(t, err, "reading the damaged chunk")
				assert.Zero(t, n, "bytes returned from a damaged chunk")
				var sink countingWriter
				k, err := o.(storage.RangeWriter).WriteRange(&sink, 0, int64(len(body)))
				assert.Error(t, err, "WriteRange over the damaged chunk")
				assert.Zero(t, k, "bytes written from a range holding a damaged chunk")
			} else {
				wantMiss(t, d, "victim")
			}
			assert.NoFileExists(t, path, "damaged file left on disk")
			wantMiss(t, d, "victim")
			assert.Equal(t, randomBody(2, 1000), mustGetBody(t, d, "neighbour"))
			if tt.wantCorrupt != "" {
				assert.Equal(t, 1.0, counter(t, reg, "outpost_disk_corrupt_total", tt.wantCorrupt))
			}
			assert.Equal(t, 1, d.Stats().Objects, "objects left in the index")
		})
	}
}

// TestDiskSweepDropsBadHeaders checks that after a crash, files whose
// header does not verify are deleted even if nothing asks for them.
func TestDiskSweepDropsBadHeaders(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir})
	for i := range 10 {
		store(t, d, meta(keyN(i), 100), randomBody(uint64(i), 100))
	}
	var damaged []string
	for i := range 3 {
		p := storage.DiskPath(d, keyN(i))
		damaged = append(damaged, p)
	}
	require.NoError(t, d.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "index"))) // as after a crash
	for _, p := range damaged {
		flip(t, p, 50)
	}
	d = newDisk(t, storage.DiskConfig{Dir: dir})
	<-storage.DiskSwept(d)
	for _, p := range damaged {
		assert.NoFileExists(t, p)
	}
	assert.Equal(t, 7, d.Stats().Objects)
}

func TestDiskCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, storage.DiskConfig{Dir: dir})
	store(t, d, meta("kept", 10), []byte("0123456789"))
	keptPath := storage.DiskPath(d, "kept")
	// A write in progress at the crash.
	w, err := d.Put(context.Background(), meta("in-flight", 100))
	require.NoError(t, err)
	w.Write(make([]byte, 50))
	require.NoError(t, d.Close())
	defer w.Close()

	leftovers := []string{
		filepath.Join(dir, "tmp", "0123456789ab-7"),                              // another run's temporary file
		filepath.Join(dir, "objects", "abc", "not-an-object"),                    // a stray name
		filepath.Join(dir, "objects", "abc", "0123456789abcdef0123456789abcdef"), // wrong fan-out directory
		filepath.Join(dir, "objects", "stray.txt"),                               // not a fan-out directory
		filepath.Join(dir, "objects", "012", "0123456789abcdef0123456789abcdef"), // too short for a header
	}
	for _, p := range leftovers {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte("garbage"), 0o600))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "objects", "def", "0123456789abcdef0123456789abcdef"), 0o700))
	outside := filepath.Join(dir, "operator-notes")
	require.NoError(t, os.WriteFile(outside, []byte("mine"), 0o600))

	d = newDisk(t, storage.DiskConfig{Dir: dir})
	for _, p := range leftovers {
		assert.NoFileExists(t, p)
	}
	assert.NoDirExists(t, filepath.Join(dir, "objects", "def", "0123456789abcdef0123456789abcdef"))
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmp, "temporary files after restart")
	assert.FileExists(t, outside, "files beside the tier's own are left alone")
	assert.FileExists(t, keptPath)
	assert.Equal(t, "0123456789", string(mustGetBody(t, d, "kept")))
	wantMiss(t, d, "in-flight")
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err, "reading byte %d of %s", off, path)
	b[0] ^= 0x20
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(b)
	require.NoError(t, err)
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
