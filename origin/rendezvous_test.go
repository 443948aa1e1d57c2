package origin

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var keyHashTests = []string{
	"http://static.example.com/img/a.png?x=1",
	"https://static.example.com/",
	"http://static.example.com",
	"http://static.example.com?",
	"http://static.example.com:8080/a%2Fb/c%20d.png?q=a+b&r=%26",
	"http://static.example.com/caf\u00e9.png",
	"http://[::1]:8080/a",
	"http://user:pass@static.example.com/a",
	"http://static.example.com/a#frag",
	"http://static~example.com:80/a",
	"mailto:someone@example.com",
	"/relative/path?x",
}

func TestKeyHashIsURLStringHash(t *testing.T) {
	for _, give := range keyHashTests {
		u, err := url.Parse(give)
		require.NoError(t, err, "url.Parse(%q)", give)
		assert.Equal(t, xxhash.Sum64String(u.String()), keyHash(u), "keyHash(%q)", give)
	}
}

func FuzzKeyHash(f *testing.F) {
	for _, s := range keyHashTests {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		if got, want := keyHash(u), xxhash.Sum64String(u.String()); got != want {
			t.Errorf("keyHash(%q) = %x, want the hash of %q, %x", s, got, u.String(), want)
		}
	})
}

func TestKeyHashDoesNotAllocate(t *testing.T) {
	u, err := url.Parse(keyHashTests[0])
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(100, func() { keyHash(u) }))
}

// homes returns the home server's URL of each of n keys in a Shield of
// parents.
func homes(t *testing.T, n int, parents ...string) []string {
	t.Helper()
	cfg := ShieldConfig{Origin: roundTripFunc(nil)}
	for _, p := range parents {
		cfg.Origins = append(cfg.Origins, Server{URL: p})
	}
	sh, err := NewShield(cfg)
	require.NoError(t, err)
	defer sh.Close()
	out := make([]string, n)
	for i := range out {
		u := &url.URL{Scheme: "http", Host: "static.example.com", Path: fmt.Sprintf("/v/%d.mp4", i)}
		out[i] = sh.g.pick(keyHash(u), nil).name
	}
	return out
}

func TestRendezvousMovesOnlyTheKeysItMust(t *testing.T) {
	const n = 20000
	four := []string{"http://shield-1.test:8080", "http://shield-2.test:8080", "http://shield-3.test:8080", "http://shield-4.test:8080"}
	before := homes(t, n, four...)

	t.Run("add a fifth", func(t *testing.T) {
		after := homes(t, n, append(four, "http://shield-5.test:8080")...)
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				assert.Equal(t, "http://shield-5.test:8080", after[i], "key %d moved between old parents", i)
			}
		}
		assert.InDelta(t, 1./5, float64(moved)/n, 0.02, "share of keys moved")
	})

	t.Run("remove one", func(t *testing.T) {
		after := homes(t, n, four[0], four[1], four[3])
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				assert.Equal(t, four[2], before[i], "key %d moved though its parent stayed", i)
			}
		}
		assert.InDelta(t, 1./4, float64(moved)/n, 0.02, "share of keys moved")
	})

	t.Run("order does not matter", func(t *testing.T) {
		assert.Equal(t, before, homes(t, n, four[3], four[1], four[0], four[2]))
	})
}

func BenchmarkKeyHash(b *testing.B) {
	u, err := url.Parse("http://static.example.com/media/2024/11/video-1080p-segment-00042.m4s?token=abc123")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		keyHash(u)
	}
}
