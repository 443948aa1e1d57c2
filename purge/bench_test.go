package purge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/require"
)

// addMixedBans records n bans of every kind, in purges of 100, issued an
// hour before clk's time: 40% URLs, 30% tags, 5% hosts, 25% prefixes (a
// fifth of them ending mid-segment), and one ban on everything.
func addMixedBans(b *testing.B, ix *Index, n int) {
	b.Helper()
	var req Request
	flush := func() {
		if len(req.URLs)+len(req.Tags)+len(req.Hosts)+len(req.Prefixes) > 0 {
			mustPurge(b, ix, req)
		}
		req = Request{}
	}
	for i := range n {
		host := fmt.Sprintf("static%d.example.com", i%50)
		switch r := i % 20; {
		case r < 8:
			req.URLs = append(req.URLs, fmt.Sprintf("http://%s/img/2026/03/photo-%d.jpg", host, i))
		case r < 14:
			req.Tags = append(req.Tags, fmt.Sprint("product-", i))
		case r < 15:
			req.Hosts = append(req.Hosts, fmt.Sprintf("h%d.example.com", i))
		case r < 19:
			req.Prefixes = append(req.Prefixes, fmt.Sprintf("http://%s/assets/v%d/", host, i))
		default:
			req.Prefixes = append(req.Prefixes, fmt.Sprintf("http://%s/img/2026/03/photo-%d", host, i))
		}
		if i%100 == 99 {
			flush()
		}
	}
	flush()
	mustPurge(b, ix, Request{All: true})
}

// BenchmarkCheck measures the lookup the edge makes on every hit.
func BenchmarkCheck(b *testing.B) {
	const bans = 10_000
	m := storage.Meta{
		URL:  "http://static3.example.com/img/2026/03/photo-1234.jpg?w=640",
		Tags: []string{"home", "product-1234", "campaign-7"},
	}
	setup := func(b *testing.B, n int) (*Index, time.Time) {
		clk := newClock()
		ix := newIndex(b, clk, Config{})
		if n > 0 {
			addMixedBans(b, ix, n)
		}
		return ix, clk.Advance(time.Hour)
	}
	b.Run("no-bans", func(b *testing.B) {
		ix, _ := setup(b, 0)
		b.ReportAllocs()
		for b.Loop() {
			ix.Check(&m)
		}
	})
	b.Run("10k-bans/fresh-object", func(b *testing.B) {
		ix, now := setup(b, bans)
		require.Equal(b, bans+1, ix.Len())
		m := m
		m.ResponseTime = now // newer than every ban: the common hit
		b.ReportAllocs()
		for b.Loop() {
			ix.Check(&m)
		}
	})
	b.Run("10k-bans/banned-object", func(b *testing.B) {
		ix, now := setup(b, bans)
		m := m
		m.ResponseTime = now.Add(-2 * time.Hour)
		_, _, banned := ix.Check(&m)
		require.True(b, banned)
		b.ReportAllocs()
		for b.Loop() {
			ix.Check(&m)
		}
	})
	b.Run("10k-bans/parallel", func(b *testing.B) {
		ix, now := setup(b, bans)
		m := m
		m.ResponseTime = now
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ix.Check(&m)
			}
		})
	})
}

// BenchmarkNewest measures the query the edge makes before a refetch.
func BenchmarkNewest(b *testing.B) {
	const u = "http://static3.example.com/img/2026/03/photo-1234.jpg?w=640"
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("%d-bans", n), func(b *testing.B) {
			ix := newIndex(b, newClock(), Config{})
			if n > 0 {
				addMixedBans(b, ix, n)
				_, ok := ix.Newest(u)
				require.True(b, ok)
			}
			b.ReportAllocs()
			for b.Loop() {
				ix.Newest(u)
			}
		})
	}
}

// fillMemory stores n small objects under http://a.test/img/ in a memory
// tier, fetched an hour before clk's time.
func fillMemory(b *testing.B, n int, clk *clock) *storage.Memory {
	b.Helper()
	tier, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 2 << 30, AverageObjectSize: 512})
	require.NoError(b, err)
	b.Cleanup(func() { tier.Close() })
	fetched := clk.Now().Add(-time.Hour)
	for i := range n {
		store(b, tier, storage.Meta{
			Key:          fmt.Sprint("k", i),
			URL:          fmt.Sprintf("http://a.test/img/%d/%d.png", i%1000, i),
			Tags:         []string{fmt.Sprint("product-", i%5000)},
			ResponseTime: fetched,
		})
	}
	return tier
}

// BenchmarkPurgeTag measures accepting a tag purge: it touches neither the
// storage nor anything that grows with it. Tags cycle through 10k, so the
// index holds 10k active bans at steady state instead of growing with b.N.
func BenchmarkPurgeTag(b *testing.B) {
	for _, objects := range []int{0, 1_000_000} {
		for _, durable := range []bool{false, true} {
			name := fmt.Sprintf("objects=%d/log=%v", objects, durable)
			b.Run(name, func(b *testing.B) {
				clk := newClock()
				cfg := Config{Tier: fillMemory(b, objects, clk)}
				if durable {
					cfg.Dir = b.TempDir()
				}
				ix := newIndex(b, clk, cfg)
				ctx := context.Background()
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					i++
					if _, err := ix.Purge(ctx, Request{Tags: []string{fmt.Sprint("product-", i%10_000)}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSweepPrefix measures how long a prefix purge over a million
// objects in a storage.Memory takes to free their space: one walk of the
// tier that deletes them all. Filling the tier takes longer than the
// sweep; run it with -benchtime=1x.
func BenchmarkSweepPrefix(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		clk := newClock()
		tier := fillMemory(b, n, clk)
		ix := newIndex(b, clk, Config{Tier: tier})
		b.StartTimer()

		rec := mustPurge(b, ix, Request{Prefixes: []string{"http://a.test/img/"}})
		require.NoError(b, ix.Sweep(ctx))

		b.StopTimer()
		require.Equal(b, int64(n), ix.Recent(1)[0].Purged, "purge %s", rec.ID)
		left := 0
		tier.Walk(ctx, func(*storage.Meta) error { left++; return nil })
		require.Zero(b, left)
		tier.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/object")
}
