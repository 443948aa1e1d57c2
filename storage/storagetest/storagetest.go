// Package storagetest is the conformance suite every storage.Tier runs, in the
// manner of testing/fstest: a tier's own test calls Run with a Harness that
// makes fresh instances, and the suite checks what any caller of the Tier
// contract relies on (visibility only after Commit, follow-while-writing,
// replacement, metadata round trips, concurrent use).
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// Harness tells Run how to make the tier under test.
type Harness struct {
	// New returns an empty tier. It registers its own cleanup (t.Cleanup).
	New func(t *testing.T) storage.Tier
	// Reopen, for persistent tiers, closes tier and opens a new instance over
	// the same state. Nil skips the persistence checks.
	Reopen func(t *testing.T, tier storage.Tier) storage.Tier
	// MaxBody is the largest body the suite writes. Zero means 3 MiB.
	MaxBody int64
}

// Run runs the conformance suite against the tiers h makes.
func Run(t *testing.T, h Harness) {
	if h.MaxBody == 0 {
		h.MaxBody = 3 << 20
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"EmptyBody", testEmptyBody},
		{"VariantIndex", testVariantIndex},
		{"InvisibleUntilCommit", testInvisibleUntilCommit},
		{"Abort", testAbort},
		{"SizeMismatch", testSizeMismatch},
		{"Replace", testReplace},
		{"FollowWhileWriting", testFollow},
		{"WriteAfterCommit", testWriteAfterCommit},
		{"ReadAtRanges", testReadAtRanges},
		{"Delete", testDelete},
		{"Update", testUpdate},
		{"UpdateAfterDelete", testUpdateAfterDelete},
		{"Walk", testWalk},
		{"Concurrent", testConcurrent},
		{"Reopen", testReopen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

var ctx = context.Background()

// sampleMeta returns metadata with every field set, for round-trip checks.
func sampleMeta(key string, size int64) storage.Meta {
	now := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	return storage.Meta{
		Key:    key,
		URL:    "http://example.com/" + key,
		Status: http.StatusOK,
		Header: http.Header{
			"Content-Type":  {"image/png"},
			"Cache-Control": {"max-age=60"},
			"X-Multi":       {"a", "b, c"},
			"Etag":          {`"v1"`},
		},
		RequestTime:          now.Add(-time.Second),
		ResponseTime:         now,
		OriginTime:           now.Add(-time.Hour),
		InitialAge:           3 * time.Second,
		Lifetime:             time.Minute,
		StaleWhileRevalidate: 10 * time.Second,
		StaleIfError:         time.Hour,
		Flags:                0x5,
		Size:                 size,
		Tags:                 []string{"t1", "t2"},
		Vary:                 []string{"Accept-Encoding"},
	}
}

// body returns deterministic bytes that differ between seeds.
func body(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// store writes m with b in pieces of varied length and commits it.
func store(t *testing.T, tier storage.Tier, m storage.Meta, b []byte) {
	t.Helper()
	w, err := tier.Put(ctx, m)
	if err != nil {
		t.Fatalf("Put(%q): %v", m.Key, err)
	}
	defer w.Close()
	writeInPieces(t, w, b)
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", m.Key, err)
	}
}

func writeInPieces(t *testing.T, w io.Writer, b []byte) {
	t.Helper()
	step := 1
	for len(b) > 0 {
		k := min(step, len(b))
		if n, err := w.Write(b[:k]); err != nil || n != k {
			t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
		}
		b = b[k:]
		step = step*3 + 7
	}
}

// readAll reads an object's whole body through ReadAt.
func readAll(t *testing.T, o storage.Object) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(o, 0, o.Meta().Size))
	if err != nil {
		t.Fatalf("reading %q: %v", o.Meta().Key, err)
	}
	return b
}

func mustGet(t *testing.T, tier storage.Tier, key string) storage.Object {
	t.Helper()
	o, err := tier.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func wantNotFound(t *testing.T, tier storage.Tier, key string) {
	t.Helper()
	o, err := tier.Get(ctx, key)
	if err == nil {
		o.Close()
		t.Fatalf("Get(%q) found an object, want ErrNotFound", key)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", key, err)
	}
}

func checkMeta(t *testing.T, got *storage.Meta, want storage.Meta) {
	t.Helper()
	eq := func(field string, g, w any) {
		t.Helper()
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: Meta.%s = %v, want %v", want.Key, field, g, w)
		}
	}
	eq("Key", got.Key, want.Key)
	eq("URL", got.URL, want.URL)
	eq("Status", got.Status, want.Status)
	eq("Header", got.Header, want.Header)
	if !got.RequestTime.Equal(want.RequestTime) {
		t.Errorf("%s: RequestTime = %v, want %v", want.Key, got.RequestTime, want.RequestTime)
	}
	if !got.ResponseTime.Equal(want.ResponseTime) {
		t.Errorf("%s: ResponseTime = %v, want %v", want.Key, got.ResponseTime, want.ResponseTime)
	}
	if !got.OriginTime.Equal(want.OriginTime) {
		t.Errorf("%s: OriginTime = %v, want %v", want.Key, got.OriginTime, want.OriginTime)
	}
	eq("InitialAge", got.InitialAge, want.InitialAge)
	eq("Lifetime", got.Lifetime, want.Lifetime)
	eq("StaleWhileRevalidate", got.StaleWhileRevalidate, want.StaleWhileRevalidate)
	eq("StaleIfError", got.StaleIfError, want.StaleIfError)
	eq("Flags", got.Flags, want.Flags)
	eq("Size", got.Size, want.Size)
	eq("Tags", got.Tags, want.Tags)
	eq("Vary", got.Vary, want.Vary)
	eq("Variants", got.Variants, want.Variants)
}

func testGetMissing(t *testing.T, h Harness) {
	wantNotFound(t, h.New(t), "never-stored")
}

func testRoundTrip(t *testing.T, h Harness) {
	tier := h.New(t)
	for _, n := range []int64{1, 1000, 64 << 10, h.MaxBody} {
		key := "rt-" + strconv.FormatInt(n, 10)
		m := sampleMeta(key, n)
		b := body(1, n)
		store(t, tier, m, b)
		o := mustGet(t, tier, key)
		checkMeta(t, o.Meta(), m)
		if got := readAll(t, o); !bytes.Equal(got, b) {
			t.Errorf("%s: body differs after round trip (%d bytes read, want %d)", key, len(got), n)
		}
	}
}

func testUnknownSize(t *testing.T, h Harness) {
	tier := h.New(t)
	b := body(2, 100_000)
	store(t, tier, sampleMeta("unknown", -1), b)
	o := mustGet(t, tier, "unknown")
	if o.Meta().Size != int64(len(b)) {
		t.Fatalf("Size after commit of unknown-length body = %d, want %d", o.Meta().Size, len(b))
	}
	if !bytes.Equal(readAll(t, o), b) {
		t.Fatal("body of unknown-length object differs")
	}
}

func testEmptyBody(t *testing.T, h Harness) {
	tier := h.New(t)
	for _, size := range []int64{0, -1} {
		key := fmt.Sprintf("empty%d", size)
		m := sampleMeta(key, size)
		m.Status = http.StatusNoContent
		store(t, tier, m, nil)
		o := mustGet(t, tier, key)
		if o.Meta().Size != 0 {
			t.Errorf("%s: Size = %d, want 0", key, o.Meta().Size)
		}
		if n, err := o.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
			t.Errorf("%s: ReadAt on empty body = %d, %v; want 0, io.EOF", key, n, err)
		}
	}
}

func testVariantIndex(t *testing.T, h Harness) {
	tier := h.New(t)
	m := storage.Meta{
		Key:      "http://example.com/v",
		URL:      "http://example.com/v",
		Vary:     []string{"Accept-Encoding", "Accept-Language"},
		Variants: []string{"k1", "k2"},
		Size:     0,
	}
	store(t, tier, m, nil)
	o := mustGet(t, tier, m.Key)
	if !o.Meta().IsVariantIndex() {
		t.Fatal("stored variant index does not report IsVariantIndex")
	}
	checkMeta(t, o.Meta(), m)
}

func testInvisibleUntilCommit(t *testing.T, h Harness) {
	tier := h.New(t)
	w, err := tier.Put(ctx, sampleMeta("pending", 10))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wantNotFound(t, tier, "pending")
	if _, err := w.Write(body(3, 10)); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, tier, "pending")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tier, "pending")
}

func testAbort(t *testing.T, h Harness) {
	tier := h.New(t)
	w, err := tier.Put(ctx, sampleMeta("aborted", 10))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body(4, 10))
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	defer w.Close()
	wantNotFound(t, tier, "aborted")
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	wantNotFound(t, tier, "aborted")

	// Aborting a replacement keeps the object it would have replaced.
	old := body(5, 100)
	store(t, tier, sampleMeta("kept", 100), old)
	w, err = tier.Put(ctx, sampleMeta("kept", 100))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body(6, 50))
	w.Abort()
	w.Close()
	if got := readAll(t, mustGet(t, tier, "kept")); !bytes.Equal(got, old) {
		t.Error("aborted replacement changed the stored body")
	}
}

func testSizeMismatch(t *testing.T, h Harness) {
	tier := h.New(t)
	// Cut short: fewer bytes than declared.
	w, err := tier.Put(ctx, sampleMeta("short", 100))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(body(7, 60))
	if err := w.Commit(); !errors.Is(err, storage.ErrSizeMismatch) {
		t.Errorf("Commit of 60 of 100 bytes = %v, want ErrSizeMismatch", err)
	}
	wantNotFound(t, tier, "short")

	// Ran long: more bytes than declared fail at Write or at Commit.
	w, err = tier.Put(ctx, sampleMeta("long", 10))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, werr := w.Write(body(8, 20))
	cerr := w.Commit()
	if werr == nil && cerr == nil {
		t.Error("writing 20 bytes into a 10-byte object succeeded")
	}
	wantNotFound(t, tier, "long")
}

func testReplace(t *testing.T, h Harness) {
	tier := h.New(t)
	b1, b2 := body(9, 5000), body(10, 7000)
	store(t, tier, sampleMeta("r", 5000), b1)
	first := mustGet(t, tier, "r")
	m2 := sampleMeta("r", 7000)
	m2.Header.Set("Etag", `"v2"`)
	store(t, tier, m2, b2)
	second := mustGet(t, tier, "r")
	checkMeta(t, second.Meta(), m2)
	if !bytes.Equal(readAll(t, second), b2) {
		t.Error("Get after replacement does not return the new body")
	}
	if !bytes.Equal(readAll(t, first), b1) {
		t.Error("an object opened before the replacement no longer reads its own body")
	}
}

func testFollow(t *testing.T, h Harness) {
	tier := h.New(t)
	b := body(11, 300_000)
	w, err := tier.Put(ctx, sampleMeta("follow", int64(len(b))))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	written := 0
	for _, step := range []int{0, 1, 4095, 70_000, 100_000, 125_904} {
		if _, err := w.Write(b[written : written+step]); err != nil {
			t.Fatal(err)
		}
		written += step
		// The written prefix reads back exactly.
		got := make([]byte, written)
		if n, err := w.ReadAt(got, 0); n != written || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(prefix of %d) = %d, %v", written, n, err)
		}
		if !bytes.Equal(got, b[:written]) {
			t.Fatalf("ReadAt after %d bytes returns different bytes", written)
		}
		// A read past the written end returns what is there and io.EOF.
		p := make([]byte, 10)
		n, err := w.ReadAt(p, int64(max(written-5, 0)))
		if want := min(written, 5); n != want || err != io.EOF {
			t.Fatalf("ReadAt across the written end (%d written) = %d, %v; want %d, io.EOF", written, n, err, want)
		}
	}
	if written != len(b) {
		t.Fatalf("test wrote %d of %d bytes", written, len(b))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	// Readers that followed the write finish from the writer after Commit.
	got := make([]byte, len(b))
	if n, err := w.ReadAt(got, 0); n != len(b) || (err != nil && err != io.EOF) || !bytes.Equal(got, b) {
		t.Fatalf("ReadAt after Commit = %d, %v (equal=%v)", n, err, bytes.Equal(got, b))
	}
}

// testFollowConcurrent is part of Concurrent: a reader polls ReadAt while a
// writer appends, and must only ever see a prefix of the body.
func followConcurrently(t *testing.T, tier storage.Tier) {
	b := body(12, 2<<20)
	w, err := tier.Put(ctx, sampleMeta("follow-live", int64(len(b))))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		buf := make([]byte, 64<<10)
		off := 0
		for off < len(b) {
			n, err := w.ReadAt(buf, int64(off))
			if !bytes.Equal(buf[:n], b[off:off+n]) {
				errc <- fmt.Errorf("follower read wrong bytes at %d", off)
				return
			}
			off += n
			if err != nil && err != io.EOF {
				errc <- err
				return
			}
			if n == 0 {
				select {
				case <-done:
					if off < len(b) {
						// Writer finished; one more pass reads the rest.
						continue
					}
				default:
					runtime.Gosched()
				}
			}
		}
	}()
	writeInPieces(t, w, b)
	close(done)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func testWriteAfterCommit(t *testing.T, h Harness) {
	tier := h.New(t)
	w, err := tier.Put(ctx, sampleMeta("closed", 3))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("abc"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("d")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v, want nil", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Commit = %v, want nil", err)
	}
	if _, err := w.ReadAt(make([]byte, 1), 0); err == nil {
		t.Error("ReadAt after Close succeeded")
	}
	if got := readAll(t, mustGet(t, tier, "closed")); string(got) != "abc" {
		t.Errorf("body after Abort and Close after Commit = %q, want %q", got, "abc")
	}
}

func testReadAtRanges(t *testing.T, h Harness) {
	tier := h.New(t)
	const n = 200_000
	b := body(13, n)
	store(t, tier, sampleMeta("ranges", n), b)
	o := mustGet(t, tier, "ranges")
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off := r.Int64N(n)
		l := r.Int64N(n - off + 1)
		p := make([]byte, l)
		k, err := o.ReadAt(p, off)
		if k != int(l) || (err != nil && !(err == io.EOF && off+l == n)) {
			t.Fatalf("ReadAt(len %d, off %d) = %d, %v", l, off, k, err)
		}
		if !bytes.Equal(p, b[off:off+l]) {
			t.Fatalf("ReadAt(len %d, off %d) returned wrong bytes", l, off)
		}
	}
	if rw, ok := o.(storage.RangeWriter); ok {
		for range 50 {
			off := r.Int64N(n)
			l := r.Int64N(n - off + 1)
			var buf bytes.Buffer
			k, err := rw.WriteRange(&buf, off, l)
			if k != l || err != nil || !bytes.Equal(buf.Bytes(), b[off:off+l]) {
				t.Fatalf("WriteRange(off %d, len %d) = %d, %v (bytes equal: %v)", off, l, k, err, bytes.Equal(buf.Bytes(), b[off:off+l]))
			}
		}
		var buf bytes.Buffer
		if k, err := rw.WriteRange(&buf, n-4, 10); k != 4 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("WriteRange across the end = %d, %v; want 4, io.ErrUnexpectedEOF", k, err)
		}
	}
	if k, err := o.ReadAt(make([]byte, 10), n-4); k != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v; want 4, io.EOF", k, err)
	}
	if k, err := o.ReadAt(make([]byte, 10), n); k != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", k, err)
	}
}

func testDelete(t *testing.T, h Harness) {
	tier := h.New(t)
	store(t, tier, sampleMeta("d", 10), body(14, 10))
	if err := tier.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, tier, "d")
	if err := tier.Delete(ctx, "never"); err != nil {
		t.Errorf("Delete of a missing key = %v, want nil", err)
	}
}

func testUpdate(t *testing.T, h Harness) {
	tier := h.New(t)
	b := body(15, 4096)
	store(t, tier, sampleMeta("u", 4096), b)
	m := sampleMeta("u", 4096)
	m.Header.Set("Cache-Control", "max-age=3600")
	m.Header.Set("X-New", "yes")
	m.ResponseTime = m.ResponseTime.Add(time.Hour)
	m.OriginTime = m.ResponseTime // a revalidation dates the copy anew
	m.Lifetime = time.Hour
	m.Tags = []string{"t3"}
	if err := tier.Update(ctx, m); err != nil {
		t.Fatalf("Update: %v", err)
	}
	o := mustGet(t, tier, "u")
	checkMeta(t, o.Meta(), m)
	if !bytes.Equal(readAll(t, o), b) {
		t.Error("Update changed the body")
	}
	if err := tier.Update(ctx, sampleMeta("missing", 1)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update of a missing key = %v, want ErrNotFound", err)
	}
	wantNotFound(t, tier, "missing")
}

// testUpdateAfterDelete checks that an Update (a 304 refresh) arriving
// after a Delete (a purge) does not bring the object back.
func testUpdateAfterDelete(t *testing.T, h Harness) {
	tier := h.New(t)
	store(t, tier, sampleMeta("ud", 10), body(20, 10))
	if err := tier.Delete(ctx, "ud"); err != nil {
		t.Fatal(err)
	}
	if err := tier.Update(ctx, sampleMeta("ud", 10)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update after Delete = %v, want ErrNotFound", err)
	}
	wantNotFound(t, tier, "ud")
}

func testWalk(t *testing.T, h Harness) {
	tier := h.New(t)
	wk, ok := tier.(storage.Walker)
	if !ok {
		t.Skip("tier does not implement storage.Walker")
	}
	want := []string{"w1", "w2", "w3"}
	for i, k := range want {
		store(t, tier, sampleMeta(k, int64(i+1)), body(16, int64(i+1)))
	}
	var got []string
	err := wk.Walk(ctx, func(m *storage.Meta) error {
		got = append(got, m.Key)
		// Walk's callback may change the tier.
		return tier.Delete(ctx, m.Key)
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Walk saw %v, want %v", got, want)
	}
	for _, k := range want {
		wantNotFound(t, tier, k)
	}
	stop := errors.New("stop")
	store(t, tier, sampleMeta("w4", 1), body(17, 1))
	if err := wk.Walk(ctx, func(*storage.Meta) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Walk returned %v, want the callback's error", err)
	}
}

// testConcurrent has writers replace a few keys with versioned bodies while
// readers check that every object they get is whole and self-consistent.
func testConcurrent(t *testing.T, h Harness) {
	tier := h.New(t)
	followConcurrently(t, tier)
	const keys, writers, readers, rounds = 4, 4, 4, 30
	var wg sync.WaitGroup
	errc := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("c%d", (w+i)%keys)
				seed := uint64(w*1000 + i)
				n := int64(1000 + (w*7919+i*104729)%50_000)
				m := sampleMeta(key, n)
				m.Header.Set("X-Seed", strconv.FormatUint(seed, 10))
				wr, err := tier.Put(ctx, m)
				if err != nil {
					errc <- err
					return
				}
				wr.Write(body(seed, n))
				err = wr.Commit()
				wr.Close()
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range rounds * 3 {
				key := fmt.Sprintf("c%d", (r+i)%keys)
				o, err := tier.Get(ctx, key)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				seed, _ := strconv.ParseUint(o.Meta().Header.Get("X-Seed"), 10, 64)
				want := body(seed, o.Meta().Size)
				got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Meta().Size))
				o.Close()
				if err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(got, want) {
					errc <- fmt.Errorf("%s: body does not match its metadata (seed %d)", key, seed)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("tier is not persistent")
	}
	tier := h.New(t)
	b := body(18, 123_456)
	m := sampleMeta("persist", int64(len(b)))
	store(t, tier, m, b)
	w, err := tier.Put(ctx, sampleMeta("uncommitted", 10))
	if err != nil {
		t.Fatal(err)
	}
	// Deliberately left open: a crash leaves writes neither committed nor
	// aborted. Reopen must not publish it.
	t.Cleanup(func() { w.Close() })
	w.Write(body(19, 5))
	store(t, tier, sampleMeta("deleted", 3), []byte("abc"))
	if err := tier.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	tier = h.Reopen(t, tier)
	o := mustGet(t, tier, "persist")
	checkMeta(t, o.Meta(), m)
	if !bytes.Equal(readAll(t, o), b) {
		t.Error("body differs after reopening")
	}
	wantNotFound(t, tier, "uncommitted")
	wantNotFound(t, tier, "deleted")
}
