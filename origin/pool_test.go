package origin

import (
	"net/http"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewRejectsBadConfig(t *testing.T) {
	one := []Server{{URL: "http://origin.test"}}
	tests := []struct {
		name    string
		give    Config
		wantErr string
	}{
		{"no servers", Config{}, "origin: no servers"},
		{"scheme", Config{Origins: []Server{{URL: "http://a.test"}, {URL: "ftp://b.test"}}}, `origins[1]: url "ftp://b.test": scheme must be http or https`},
		{"no host", Config{Origins: []Server{{URL: "http:///x"}}}, "origins[0]: url \"http:///x\": no host"},
		{"query", Config{Origins: []Server{{URL: "http://a.test/?q=1"}}}, "must not have a query"},
		{"user info", Config{Origins: []Server{{URL: "http://u:p@a.test"}}}, "must not have a query, fragment or user info"},
		{"port", Config{Origins: []Server{{URL: "http://a.test:99999"}}}, "bad port"},
		{"unicode host", Config{Origins: []Server{{URL: "http://bücher.test"}}}, "host must be ASCII"},
		{"duplicate", Config{Origins: []Server{{URL: "http://a.test"}, {URL: "http://a.test:80/"}}}, "origins[1]: http://a.test:80 is origins[0] again"},
		{"weight", Config{Origins: []Server{{URL: "http://a.test", Weight: 300}}}, "origins[0]: weight 300: must be between 1 and 256"},
		{"balance", Config{Origins: one, Balance: "random"}, `balance "random"`},
		{"host header", Config{Origins: one, HostHeader: "server"}, `host_header "server"`},
		{"path prefix", Config{Origins: one, PathPrefix: "static"}, `path_prefix "static"`},
		{"path prefix query", Config{Origins: one, PathPrefix: "/static?x"}, `path_prefix "/static?x"`},
		{"header name", Config{Origins: one, RequestHeaders: HeaderRules{Add: map[string]string{"X Bad": "1"}}}, `request_headers.add: "X Bad"`},
		{"header value", Config{Origins: one, RequestHeaders: HeaderRules{Add: map[string]string{"X-A": "1\r\nX-B: 2"}}}, "request_headers.add: X-A: value has control characters"},
		{"header twice", Config{Origins: one, RequestHeaders: HeaderRules{Add: map[string]string{"x-a": "1", "X-A": "2"}}}, "are the same header"},
		{"remove cdn-loop", Config{Origins: one, RequestHeaders: HeaderRules{Remove: []string{"cdn-loop"}}}, "request_headers.remove: cdn-loop may not be removed"},
		{"health path", Config{Origins: one, Health: HealthCheck{Path: "healthz"}}, `health.path "healthz"`},
		{"health timeout", Config{Origins: one, Health: HealthCheck{Path: "/h", Interval: time.Second, Timeout: 2 * time.Second}}, "health.timeout 2s: must not exceed health.interval 1s"},
		{"health status", Config{Origins: one, Health: HealthCheck{Path: "/h", Status: 42}}, "health.status 42"},
		{"health fall", Config{Origins: one, Health: HealthCheck{Path: "/h", Fall: -1}}, "health.fall -1"},
		{"ejection ratio", Config{Origins: one, Ejection: Ejection{Ratio: 1.5}}, "ejection.ratio 1.5"},
		{"ejection backoff", Config{Origins: one, Ejection: Ejection{Backoff: time.Minute, MaxBackoff: time.Second}}, "ejection.max_backoff 1s"},
		{"timeouts", Config{Origins: one, Timeouts: Timeouts{Dial: -time.Second}}, "timeouts.dial -1s: must not be negative"},
		{"ca", Config{Origins: []Server{{URL: "https://a.test"}}, TLS: TLS{CA: []byte("not pem")}}, "tls.ca: no PEM certificate found"},
		{"max idle", Config{Origins: one, MaxIdleConnsPerServer: -1}, "max_idle_conns_per_server -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.give)
			if p != nil {
				p.Close()
			}
			require.Error(t, err, "New(%+v)", tt.give)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestNewDoesNotChangeConfig(t *testing.T) {
	cfg := Config{Origins: []Server{{URL: "http://a.test"}}, Health: HealthCheck{Path: "/h"}}
	want := cfg
	want.Origins = []Server{{URL: "http://a.test"}}
	p, err := New(cfg)
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, want, cfg)
}

func TestRoundTripAfterClose(t *testing.T) {
	o := newOrigin(t, "a")
	p := newTestPool(t, Config{Origins: servers(o)})
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "second Close")
	_, _, err := fetch(t, p, "http://static.example.com/a.png")
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, o.hits.Load())
}

func TestMetricsRegisterPerPool(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{Name: "a", Origins: []Server{{URL: "http://a.test"}}, Registerer: reg})
	require.NoError(t, err)
	b, err := New(Config{Name: "b", Origins: []Server{{URL: "http://b.test"}}, Registerer: reg})
	require.NoError(t, err)
	_, err = New(Config{Name: "a", Origins: []Server{{URL: "http://c.test"}}, Registerer: reg})
	assert.ErrorContains(t, err, `register metrics of pool "a"`, "a second pool named a")

	require.NoError(t, a.Close())
	again, err := New(Config{Name: "a", Origins: []Server{{URL: "http://c.test"}}, Registerer: reg})
	require.NoError(t, err, "a pool named a after the first one closed")
	again.Close()
	b.Close()
}

// metric returns the value of a metric with labels pool and server from reg.
func metric(t *testing.T, reg *prometheus.Registry, name, pool, server string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, reg, name) {
		if metrictest.Label(m, "pool") == pool && metrictest.Label(m, "server") == server {
			return metrictest.Value(m)
		}
	}
	t.Fatalf("no metric %s{pool=%q,server=%q}", name, pool, server)
	return 0
}

func TestMetricsShowHealth(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	b.status.Store(http.StatusServiceUnavailable)
	reg := prometheus.NewRegistry()
	p := newTestPool(t, Config{Name: "static", Origins: servers(a, b), Registerer: reg, Ejection: Ejection{Failures: 1}})

	for range 4 {
		_, _, err := fetch(t, p, "http://static.example.com/a.png")
		require.NoError(t, err)
	}

	assert.Equal(t, 1.0, metric(t, reg, "outpost_origin_up", "static", a.URL))
	assert.Equal(t, 0.0, metric(t, reg, "outpost_origin_up", "static", b.URL), "b answered 503 once: ejected")
	assert.Equal(t, 3.0, metric(t, reg, "outpost_origin_requests_total", "static", a.URL))
	assert.Equal(t, 1.0, metric(t, reg, "outpost_origin_requests_total", "static", b.URL))
	assert.Equal(t, 1.0, metric(t, reg, "outpost_origin_failures_total", "static", b.URL))
	assert.Equal(t, 1.0, metric(t, reg, "outpost_origin_ejections_total", "static", b.URL))
	assert.Equal(t, 0.0, metric(t, reg, "outpost_origin_in_flight_requests", "static", a.URL))
}
