package storage_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/require"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"1MiB", 1 << 20},
	{"100MiB", 100 << 20},
}

// BenchmarkDiskHit measures serving a disk hit: through WriteRange to a
// real TCP connection of a net/http server (sendfile; and, for comparison,
// with the ResponseWriter's ReadFrom hidden), and through ReadAt into a
// 256 KiB buffer. The client runs in the same process on the same two
// cores, so the HTTP figures are end to end over loopback. The page cache holds the file, as it does for a
// hot object; the figures are the cost of the copy, not of the device.
func BenchmarkDiskHit(b *testing.B) {
	for _, bs := range benchSizes {
		d := newDisk(b, storage.DiskConfig{MaxBytes: 1 << 30})
		body := randomBody(1, bs.size)
		store(b, d, meta("obj", int64(bs.size)), body)
		for _, path := range []struct{ name, query string }{
			{"sendfile", "header=1"},
			{"userspace", "header=1&copy=1"}, // for comparison: no sendfile
		} {
			b.Run(bs.name+"/"+path.name, func(b *testing.B) {
				srv, _ := rangeServer(b, d)
				client := srv.Client()
				buf := make([]byte, 256<<10)
				b.SetBytes(int64(bs.size))
				b.ReportAllocs()
				for b.Loop() {
					resp, err := client.Get(srv.URL + "/obj?" + path.query)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.CopyBuffer(io.Discard, onlyReader{resp.Body}, buf)
					resp.Body.Close()
					if err != nil || n != int64(bs.size) {
						b.Fatalf("read %d bytes, %v", n, err)
					}
				}
			})
		}
		b.Run(bs.name+"/ReadAt", func(b *testing.B) {
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				o, err := d.Get(context.Background(), "obj")
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); off < int64(bs.size); off += int64(len(buf)) {
					if _, err := o.ReadAt(buf, off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
				o.Close()
			}
		})
	}
}

// onlyReader hides io.Discard's ReaderFrom from the client-side copy.
type onlyReader struct{ io.Reader }

// BenchmarkDiskGet measures the latency of a hit's Get and Close: open,
// header read and decode, index lookup.
func BenchmarkDiskGet(b *testing.B) {
	d := newDisk(b, storage.DiskConfig{})
	m := meta("http://example.com/images/logo.png", 4096)
	m.Header.Set("Cache-Control", "public, max-age=86400")
	m.Header.Set("Etag", `"5f3c-61a8b2c4"`)
	m.Header.Set("Last-Modified", "Tue, 24 Nov 2026 10:00:00 GMT")
	store(b, d, m, randomBody(1, 4096))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		o, err := d.Get(ctx, m.Key)
		if err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}

// BenchmarkDiskCommit measures writing and committing a 16 KiB object.
func BenchmarkDiskCommit(b *testing.B) {
	d := newDisk(b, storage.DiskConfig{})
	body := randomBody(1, 16<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		store(b, d, meta(keyN(i%10_000), int64(len(body))), body)
	}
}

// fillDisk stores n objects of size bytes in dir with a few goroutines.
func fillDisk(tb testing.TB, dir string, n, size int) {
	d, err := storage.NewDisk(storage.DiskConfig{Dir: dir, MaxBytes: 1 << 40})
	require.NoError(tb, err)
	defer d.Close()
	<-d.Ready()
	body := randomBody(1, size)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				store(tb, d, meta(keyN(i), int64(size)), body)
			}
		})
	}
	wg.Wait()
}

// BenchmarkDiskIndexLoad measures a warm restart: NewDisk until Ready over
// a directory of 100k small objects (the file system's caches warm, as
// after a process restart; a cold start after a reboot waits on the device),
// after a clean Close, after a crash (with a periodic snapshot), and with
// no snapshot at all (every file stat'ed). The million-object figures are
// TestDiskLoadMillion's.
func BenchmarkDiskIndexLoad(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	fillDisk(b, dir, n, 1000)
	for _, bc := range loadCases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.prepare(b, dir)
				loadOnce(b, dir, n)
			}
			b.ReportMetric(float64(n), "objects")
		})
	}
}

// loadCases are the states a restart finds the directory in; each
// prepares it from the state a clean Close leaves.
var loadCases = []struct {
	name    string
	prepare func(tb testing.TB, dir string)
}{
	{"clean", func(testing.TB, string) {}},
	{"crash", func(tb testing.TB, dir string) { // with a periodic snapshot
		require.NoError(tb, storage.MarkSnapshotUnclean(dir))
	}},
	{"nosnapshot", func(tb testing.TB, dir string) { // every file stat'ed
		require.NoError(tb, os.Remove(filepath.Join(dir, "index")))
	}},
}

// loadOnce opens the Disk in dir, waits until its index holds n objects,
// and closes it, returning how long loading took.
func loadOnce(tb testing.TB, dir string, n int) time.Duration {
	start := time.Now()
	d, err := storage.NewDisk(storage.DiskConfig{Dir: dir, MaxBytes: 1 << 40})
	require.NoError(tb, err)
	<-d.Ready()
	took := time.Since(start)
	require.Equal(tb, n, d.Stats().Objects, "objects loaded")
	require.NoError(tb, d.Close())
	return took
}

// TestDiskLoadMillion measures the warm-restart time over a million small
// objects in the cases of BenchmarkDiskIndexLoad. Filling the directory
// takes minutes, so it runs only when OUTPOST_DISK_LOAD_OBJECTS is set (to
// the number of objects, e.g. 1000000), and never under -short.
// OUTPOST_DISK_LOAD_DIR names a directory to fill once and reuse.
func TestDiskLoadMillion(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OUTPOST_DISK_LOAD_OBJECTS"))
	if testing.Short() || n <= 0 {
		t.Skip("set OUTPOST_DISK_LOAD_OBJECTS=1000000 to measure the index load of a million objects")
	}
	dir := os.Getenv("OUTPOST_DISK_LOAD_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if entries, _ := os.ReadDir(dir); len(entries) == 0 {
		start := time.Now()
		fillDisk(t, dir, n, 1000)
		t.Logf("stored %d objects in %v", n, time.Since(start))
	}
	for range 3 {
		for _, lc := range loadCases {
			lc.prepare(t, dir)
			t.Logf("%s: index of %d objects loaded in %v", lc.name, n, loadOnce(t, dir, n))
		}
	}
}
