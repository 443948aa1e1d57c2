package storage_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// edgeMeta is metadata as the edge stores it for a typical static object.
func edgeMeta(i int, size int64) storage.Meta {
	url := fmt.Sprintf("http://static.example.com/assets/img/%08d.jpg", i)
	return storage.Meta{
		Key: url, URL: url, Status: 200, Size: size,
		Header: http.Header{
			"Content-Type":   {"image/jpeg"},
			"Cache-Control":  {"public, max-age=86400"},
			"Etag":           {fmt.Sprintf(`"%016x"`, i)},
			"Last-Modified":  {"Mon, 02 Jan 2006 15:04:05 GMT"},
			"Date":           {"Mon, 02 Jan 2006 15:04:05 GMT"},
			"Content-Length": {fmt.Sprint(size)},
			"Accept-Ranges":  {"bytes"},
		},
	}
}

// TestMemoryChargeCoversHeap measures what objects held by the memory
// tier cost the Go heap (their metadata, keys and index entries; the
// bodies are in the arena) and checks that the charge counted against the
// budget covers it, without overcharging by much.
func TestMemoryChargeCoversHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n = 20_000
	m := newMemory(t, storage.MemoryConfig{MaxBytes: 1 << 30})
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		w, err := m.Put(ctx, edgeMeta(i, 100))
		require.NoError(t, err)
		w.Write(make([]byte, 100))
		require.NoError(t, w.Commit())
		w.Close()
	}
	for i := range n {
		o, err := m.Get(ctx, edgeMeta(i, 100).Key)
		require.NoError(t, err)
		o.Close()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := m.Stats()
	require.Equal(t, n, st.Objects)
	heap := int64(after.HeapAlloc-before.HeapAlloc) / n
	charged := (st.Bytes - st.ArenaUsed) / n // beyond the body's page
	t.Logf("per object: heap %d bytes, charged %d bytes beside the body", heap, charged)
	assert.GreaterOrEqual(t, charged, heap, "charge covers the heap an object takes")
	assert.Less(t, charged, heap*3/2, "charge within 1.5 × the heap an object takes")
	runtime.KeepAlive(m)
}
