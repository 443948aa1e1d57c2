package purge

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// canonicalize stands in for the edge's canonical URL form: scheme and
// host lowercase, no fragment.
func canonicalize(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newMemory(t testing.TB) *storage.Memory {
	t.Helper()
	m, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 64 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// newIndex returns an Index over a fresh memory tier, on clk, with cfg's
// other fields as given.
func newIndex(t testing.TB, clk *clock, cfg Config) *Index {
	t.Helper()
	if cfg.Canonicalize == nil {
		cfg.Canonicalize = canonicalize
	}
	if cfg.Tier == nil {
		cfg.Tier = newMemory(t)
	}
	if cfg.Now == nil && clk != nil {
		cfg.Now = clk.Now
	}
	ix, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	return ix
}

// store commits an object with a small body to tier.
func store(t testing.TB, tier storage.Tier, m storage.Meta) {
	t.Helper()
	if m.Status == 0 {
		m.Status = 200
	}
	body := []byte("body of " + m.Key)
	m.Size = int64(len(body))
	w, err := tier.Put(context.Background(), m)
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Write(body)
	require.NoError(t, err)
	require.NoError(t, w.Commit())
}

// stored reports whether tier holds key.
func stored(t testing.TB, tier storage.Tier, key string) bool {
	t.Helper()
	o, err := tier.Get(context.Background(), key)
	if err != nil {
		return false
	}
	o.Close()
	return true
}

func mustPurge(t testing.TB, ix *Index, req Request) Record {
	t.Helper()
	rec, err := ix.Purge(context.Background(), req)
	require.NoError(t, err)
	return rec
}
