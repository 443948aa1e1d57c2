package origin

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStaleConnectionNeverDuplicatesNonIdempotentRequests: a request
// lost on a keep-alive connection the origin had just closed reached the
// origin's socket; it is sent again only when repeating it is harmless
// (RFC 9110 §9.2.2), and both outcomes show in the metrics.
func TestStaleConnectionNeverDuplicatesNonIdempotentRequests(t *testing.T) {
	for _, tt := range []struct {
		method      string
		idempotency bool // the client sent Idempotency-Key
		wantRetried bool
	}{
		{method: http.MethodGet, wantRetried: true},
		{method: http.MethodHead, wantRetried: true},
		{method: http.MethodPut, wantRetried: true},
		{method: http.MethodDelete, wantRetried: true},
		{method: http.MethodPost},
		{method: http.MethodPatch},
		{method: "PURGE"},
		{method: http.MethodPost, idempotency: true, wantRetried: true},
	} {
		name := tt.method
		if tt.idempotency {
			name += " with Idempotency-Key"
		}
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, "only")
			var second atomic.Int32 // arrivals of the second request, dead or alive
			var n atomic.Int32
			o.handle(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) > 1 {
					second.Add(1)
					echo(w, r)
					return
				}
				// Answer over the raw connection, keeping it open; then
				// close it as the next request arrives on it.
				conn, rw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					panic(err)
				}
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				rw.Reader.ReadByte()
				second.Add(1)
				conn.Close()
			})
			reg := prometheus.NewRegistry()
			p := newTestPool(t, Config{Origins: servers(o), Registerer: reg})
			_, body, err := fetch(t, p, "http://static.example.com/first")
			require.NoError(t, err)
			require.Equal(t, "first", body)

			var rb *bytes.Reader
			if tt.method != http.MethodGet && tt.method != http.MethodHead {
				rb = bytes.NewReader([]byte("again"))
			}
			req, err := http.NewRequest(tt.method, "http://static.example.com/second", nil)
			require.NoError(t, err)
			if rb != nil {
				req, err = http.NewRequest(tt.method, "http://static.example.com/second", rb)
				require.NoError(t, err)
			}
			if tt.idempotency {
				req.Header.Set("Idempotency-Key", "k1")
			}
			status, _, err := send(p, req)

			retries := metricValue(t, reg, "outpost_origin_retries_total", "stale_connection")
			skipped := metricValue(t, reg, "outpost_origin_retries_skipped_total", "not_idempotent")
			if tt.wantRetried {
				require.NoError(t, err)
				assert.Equal(t, 200, status)
				assert.Equal(t, int32(2), second.Load(), "sent again once")
				assert.Equal(t, 1.0, retries, "the retry is counted")
				assert.Zero(t, skipped)
			} else {
				require.Error(t, err)
				assert.Equal(t, int32(1), second.Load(), "never sent twice")
				assert.Zero(t, retries)
				assert.Equal(t, 1.0, skipped, "the request not retried is counted")
			}
		})
	}
}

// metricValue returns the value of the series of a metric with the label
// value given (any label named reason).
func metricValue(t *testing.T, g prometheus.Gatherer, name, reason string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, g, name) {
		if strings.EqualFold(metrictest.Label(m, "reason"), reason) {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{reason=%q}", name, reason)
	return 0
}
