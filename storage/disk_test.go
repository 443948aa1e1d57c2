package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/outpost-cdn/outpost/storage/storagetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newDisk opens a Disk in cfg.Dir (a new temporary directory if empty),
// waits until its index is loaded, and closes it when the test ends.
func newDisk(t testing.TB, cfg storage.DiskConfig) *storage.Disk {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	d, err := storage.NewDisk(cfg)
	require.NoError(t, err, "NewDisk(%+v)", cfg)
	t.Cleanup(func() { d.Close() })
	<-d.Ready()
	return d
}

// reopenDisk closes d and opens a new Disk over the same directory.
func reopenDisk(t testing.TB, d *storage.Disk, cfg storage.DiskConfig) *storage.Disk {
	t.Helper()
	require.NoError(t, d.Close())
	cfg.Dir = storage.DiskDir(d)
	return newDisk(t, cfg)
}

func TestDiskConformance(t *testing.T) {
	cfg := storage.DiskConfig{MaxBytes: 256 << 20}
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Tier { return newDisk(t, cfg) },
		Reopen: func(t *testing.T, tier storage.Tier) storage.Tier {
			return reopenDisk(t, tier.(*storage.Disk), cfg)
		},
	})
}

func TestNewDiskConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    storage.DiskConfig
		wantErr string
	}{
		{"no dir", storage.DiskConfig{}, "Dir is empty"},
		{"negative budget", storage.DiskConfig{Dir: "x", MaxBytes: -1}, "MaxBytes -1 is negative"},
		{"negative object size", storage.DiskConfig{Dir: "x", MaxObjectSize: -1}, "MaxObjectSize -1 is negative"},
		{"negative block size", storage.DiskConfig{Dir: "x", BlockSize: -1}, "BlockSize -1 is negative"},
		{"negative workers", storage.DiskConfig{Dir: "x", LoadWorkers: -1}, "LoadWorkers -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storage.NewDisk(tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr, "NewDisk(%+v)", tt.give)
		})
	}
}

func TestDiskDirIsLocked(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	_, err := storage.NewDisk(storage.DiskConfig{Dir: storage.DiskDir(d)})
	require.Error(t, err, "a second Disk on a directory in use")
	assert.Contains(t, err.Error(), "in use")
	require.NoError(t, d.Close())
	d2, err := storage.NewDisk(storage.DiskConfig{Dir: storage.DiskDir(d)})
	require.NoError(t, err, "after Close the directory is free")
	d2.Close()
}

func TestDiskClosed(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	ctx := context.Background()
	store(t, d, meta("k", 3), []byte("abc"))
	o, err := d.Get(ctx, "k")
	require.NoError(t, err)
	defer o.Close()
	w, err := d.Put(ctx, meta("w", 3))
	require.NoError(t, err)
	defer w.Close()
	w.Write([]byte("xyz"))

	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "second Close")
	_, err = d.Get(ctx, "k")
	assert.ErrorIs(t, err, storage.ErrClosed, "Get after Close")
	_, err = d.Put(ctx, meta("k2", 1))
	assert.ErrorIs(t, err, storage.ErrClosed, "Put after Close")
	assert.ErrorIs(t, d.Delete(ctx, "k"), storage.ErrClosed, "Delete after Close")
	assert.ErrorIs(t, d.Update(ctx, meta("k", 3)), storage.ErrClosed, "Update after Close")
	assert.ErrorIs(t, d.Walk(ctx, func(*storage.Meta) error { return nil }), storage.ErrClosed, "Walk after Close")
	assert.ErrorIs(t, w.Commit(), storage.ErrClosed, "Commit after Close")

	// What was handed out before Close still reads.
	assert.Equal(t, "abc", string(readBody(t, o)))
	got := make([]byte, 3)
	n, _ := w.ReadAt(got, 0)
	assert.Equal(t, "xyz", string(got[:n]))
}

func TestDiskUpdateOutgrowsHeader(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	ctx := context.Background()
	body := randomBody(1, 3<<20) // three chunks and a chunk table
	store(t, d, meta("u", int64(len(body))), body)
	before, err := d.Get(ctx, "u")
	require.NoError(t, err)
	defer before.Close()

	m := meta("u", int64(len(body)))
	m.Header.Set("X-Long", string(bytes.Repeat([]byte("v"), 10_000)))
	require.NoError(t, d.Update(ctx, m))
	after, err := d.Get(ctx, "u")
	require.NoError(t, err)
	defer after.Close()
	assert.Equal(t, m.Header.Get("X-Long"), after.Meta().Header.Get("X-Long"))
	assert.Equal(t, body, readBody(t, after), "body after an Update that rewrote the file")
	assert.Empty(t, before.Meta().Header.Get("X-Long"), "an object opened before keeps its metadata")
	assert.Equal(t, body, readBody(t, before), "an object opened before keeps its body")

	// The rewritten file survives a restart and verifies.
	d = reopenDisk(t, d, storage.DiskConfig{})
	again, err := d.Get(ctx, "u")
	require.NoError(t, err)
	defer again.Close()
	assert.Equal(t, body, readBody(t, again))
	assert.Equal(t, m.Header.Get("X-Long"), again.Meta().Header.Get("X-Long"))
}

func TestDiskMetaLimit(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	m := meta("huge-meta", 1)
	m.Header.Set("X-Huge", string(make([]byte, 2<<20)))
	_, err := d.Put(context.Background(), m)
	assert.ErrorIs(t, err, storage.ErrTooLarge)
}

func TestDiskObjectLimit(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{MaxBytes: 1 << 20, MaxObjectSize: 10_000})
	ctx := context.Background()
	_, err := d.Put(ctx, meta("big", 20_000))
	assert.ErrorIs(t, err, storage.ErrTooLarge, "declared size over the limit")

	w, err := d.Put(ctx, meta("chunked", -1))
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(make([]byte, 9000))
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 2000))
	assert.ErrorIs(t, err, storage.ErrTooLarge, "Write crossing the limit")
	assert.Error(t, w.Commit(), "Commit after a refused Write")
	_, err = d.Get(ctx, "chunked")
	assert.ErrorIs(t, err, storage.ErrNotFound)
	// The bytes accepted before the refusal stay readable, so the caller
	// can move them elsewhere.
	n, err := w.ReadAt(make([]byte, 10_000), 0)
	assert.Equal(t, 9000, n)
	assert.ErrorIs(t, err, io.EOF)
}

func TestDiskMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := newDisk(t, storage.DiskConfig{Registerer: reg, MaxBytes: 1 << 20, BlockSize: 4096})
	store(t, d, meta("a", 5000), randomBody(1, 5000))
	assert.Equal(t, 1.0, gauge(t, reg, "outpost_disk_objects"))
	assert.Equal(t, 8192.0, gauge(t, reg, "outpost_disk_bytes"), "5000 bytes and a header in 4 KiB blocks")
	assert.Equal(t, float64(1<<20), gauge(t, reg, "outpost_disk_max_bytes"))

	_, err := storage.NewDisk(storage.DiskConfig{Dir: t.TempDir(), Registerer: reg})
	assert.Error(t, err, "a second Disk on the same Registerer")
	require.NoError(t, d.Close())
	d2 := newDisk(t, storage.DiskConfig{Dir: t.TempDir(), Registerer: reg})
	assert.Equal(t, 0.0, gauge(t, reg, "outpost_disk_objects"), "metrics of the new Disk after Close unregistered the old")
	d2.Close()
}

// gauge returns the value of the unlabelled metric name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	s := metrictest.Series(t, reg, name)
	if len(s) == 0 {
		t.Fatalf("no metric %s", name)
	}
	return metrictest.Value(s[0])
}

// counter returns the value of metric name with the one label value given.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, reg, name) {
		if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() == label {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func meta(key string, size int64) storage.Meta {
	return storage.Meta{
		Key:    key,
		URL:    "http://example.com/" + key,
		Status: http.StatusOK,
		Header: http.Header{"Content-Type": {"application/octet-stream"}},
		Size:   size,
	}
}

func randomBody(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

func store(t testing.TB, tier storage.Tier, m storage.Meta, body []byte) {
	t.Helper()
	w, err := tier.Put(context.Background(), m)
	require.NoError(t, err, "Put(%q)", m.Key)
	defer w.Close()
	_, err = w.Write(body)
	require.NoError(t, err, "Write(%q)", m.Key)
	require.NoError(t, w.Commit(), "Commit(%q)", m.Key)
}

func readBody(t testing.TB, o storage.Object) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(o, 0, o.Meta().Size))
	require.NoError(t, err, "reading %q", o.Meta().Key)
	return b
}

func mustGetBody(t testing.TB, tier storage.Tier, key string) []byte {
	t.Helper()
	o, err := tier.Get(context.Background(), key)
	require.NoError(t, err, "Get(%q)", key)
	defer o.Close()
	return readBody(t, o)
}

func wantMiss(t testing.TB, tier storage.Tier, key string) {
	t.Helper()
	o, err := tier.Get(context.Background(), key)
	if err == nil {
		o.Close()
	}
	assert.True(t, errors.Is(err, storage.ErrNotFound), "Get(%q) = %v, want ErrNotFound", key, err)
}

func keyN(i int) string { return fmt.Sprintf("http://example.com/object/%d", i) }
