package access

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// counted returns a host's allowed count for rule when reason is "", else
// its denied count for that reason.
func counted(t *testing.T, m *Metrics, host, rule, reason string) float64 {
	t.Helper()
	if reason == "" {
		return testutil.ToFloat64(m.allowed.WithLabelValues(host, rule))
	}
	return testutil.ToFloat64(m.denied.WithLabelValues(host, rule, reason))
}

// testutilDelay returns a host's outpost_rate_limit_delay_seconds_total.
func testutilDelay(m *Metrics, host string) float64 {
	return testutil.ToFloat64(m.delay.WithLabelValues(host))
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// TestPolicyOrder: rate limits come first (a flood of forged tokens costs
// no HMAC), then hotlink rules, then the token; each refusal is answered
// with its status and counted once.
func TestPolicyOrder(t *testing.T) {
	key := []byte(vectorKey)
	m, err := NewMetrics(nil)
	require.NoError(t, err)
	p, err := New(Config{
		Host:       "h",
		SignedURLs: SignedURLs{Keys: [][]byte{key}},
		Hotlink:    Hotlink{Referers: []string{"example.com"}},
		RateLimit:  RateLimit{Client: Limit{Requests: 1, Burst: 2}},
		Metrics:    m,
		Now:        func() time.Time { return time.Unix(vectorExp-60, 0) },
	})
	require.NoError(t, err)
	good := "http://h" + vectorURL[len("https://media.example.com"):]
	for i, tt := range []struct {
		giveURL, giveReferer string
		wantStatus           int
	}{
		{good, "https://example.com/page", 200},
		{good, "https://evil.example/page", 403},
		{"http://h/videos/intro.mp4", "https://example.com/page", 429},
	} {
		rec := httptest.NewRecorder()
		_, ok := p.Admit(rec, signedRequest(tt.giveURL, "192.0.2.9", "Referer", tt.giveReferer))
		if tt.wantStatus == 200 {
			assert.True(t, ok, "request %d", i)
			continue
		}
		assert.False(t, ok, "request %d", i)
		assert.Equal(t, tt.wantStatus, rec.Code, "request %d", i)
	}
	assert.Equal(t, 2.0, counted(t, m, "h", ruleRate, ""))
	assert.Equal(t, 1.0, counted(t, m, "h", ruleRate, reasonClientRequests))
	assert.Equal(t, 1.0, counted(t, m, "h", ruleHotlink, ""))
	assert.Equal(t, 1.0, counted(t, m, "h", ruleHotlink, reasonReferer))
	assert.Equal(t, 1.0, counted(t, m, "h", ruleSigned, ""))
	assert.Equal(t, 0.0, counted(t, m, "h", ruleSigned, reasonMissing), "the 429 never reached the token check")
}

// TestGateSwapsPolicies: a reload stores a new Policy; requests judged
// after the store see the new rules, and an all-off Policy admits with the
// caller's own writer.
func TestGateSwapsPolicies(t *testing.T) {
	off, err := New(Config{})
	require.NoError(t, err)
	assert.False(t, off.Enabled())
	g := NewGate(off)
	assert.Nil(t, g.Load(), "an all-off Policy is not kept")

	rec := httptest.NewRecorder()
	w, ok := g.Admit(rec, signedRequest("http://h/a", "192.0.2.1"))
	assert.True(t, ok)
	assert.Same(t, rec, w.(*httptest.ResponseRecorder), "no rule: the caller's writer")

	strict, err := New(Config{Hotlink: Hotlink{Referers: []string{"example.com"}, DenyEmpty: true}})
	require.NoError(t, err)
	g.Store(strict)
	rec = httptest.NewRecorder()
	_, ok = g.Admit(rec, signedRequest("http://h/a", "192.0.2.1"))
	assert.False(t, ok)
	assert.Equal(t, http.StatusForbidden, rec.Code)

	g.Store(nil)
	_, ok = g.Admit(httptest.NewRecorder(), signedRequest("http://h/a", "192.0.2.1"))
	assert.True(t, ok)
}

// TestMetricsExported: the series reach a registry under their documented
// names, the clients gauge included.
func TestMetricsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	p, err := New(Config{Host: "h", RateLimit: RateLimit{Client: Limit{Requests: 100}, Prefix: Limit{Requests: 1000}}, Metrics: m})
	require.NoError(t, err)
	for _, c := range []string{"192.0.2.1", "192.0.2.2", "198.51.100.1"} {
		_, ok := p.Admit(httptest.NewRecorder(), signedRequest("http://h/a", c))
		require.True(t, ok)
	}
	n, err := testutil.GatherAndCount(reg, "outpost_rate_limit_clients", "outpost_access_allowed_total")
	require.NoError(t, err)
	assert.Equal(t, 5, n, "2 tables + allowed for 3 rules")
	require.NoError(t, testutil.GatherAndCompare(reg, stringsReader(`
# HELP outpost_rate_limit_clients Clients (or prefixes) in a table of token buckets.
# TYPE outpost_rate_limit_clients gauge
outpost_rate_limit_clients{host="h",table="client"} 3
outpost_rate_limit_clients{host="h",table="prefix"} 2
`), "outpost_rate_limit_clients"))
	_, err = NewMetrics(reg)
	assert.Error(t, err, "a second Metrics on one registry")
}
