package origin

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsOrigin is an https origin that answers the SNI name and protocol each
// request came with.
func tlsOrigin(t *testing.T, http2 bool) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.ServerName+" "+r.Proto)
	}))
	srv.EnableHTTP2 = http2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, ca
}

func TestTLSOrigins(t *testing.T) {
	h2, h2CA := tlsOrigin(t, true)
	h1, h1CA := tlsOrigin(t, false)
	tests := []struct {
		name     string
		giveURL  string
		giveTLS  TLS
		wantBody string
	}{
		// httptest's certificate is for example.com and 127.0.0.1.
		{"custom CA, SNI, HTTP/2", h2.URL, TLS{CA: h2CA, ServerName: "example.com"}, "example.com HTTP/2.0"},
		{"custom CA, IP address, HTTP/2", h2.URL, TLS{CA: h2CA}, " HTTP/2.0"},
		{"custom CA, SNI, HTTP/1.1 only", h1.URL, TLS{CA: h1CA, ServerName: "example.com"}, "example.com HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Config{Origins: []Server{{URL: tt.giveURL}}, TLS: tt.giveTLS})
			for range 2 { // the second request reuses the connection
				status, body, err := fetch(t, p, "http://static.example.com/a.png")
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
				assert.Equal(t, tt.wantBody, body)
			}
		})
	}
}

func TestTLSVerificationFailures(t *testing.T) {
	srv, ca := tlsOrigin(t, true)
	tests := []struct {
		name    string
		giveTLS TLS
	}{
		{"system roots", TLS{}},
		{"name not in certificate", TLS{CA: ca, ServerName: "other.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Config{Origins: []Server{{URL: srv.URL}}, TLS: tt.giveTLS})

			_, _, err := fetch(t, p, "http://static.example.com/a.png")

			var oe *Error
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, srv.URL, oe.Server)
			var ve *tls.CertificateVerificationError
			assert.ErrorAs(t, err, &ve)
			var ce *connectError
			assert.ErrorAs(t, err, &ce, "a failed handshake sent no request: retryable")
			assert.False(t, oe.Timeout())
		})
	}
}

func TestIdleBodyReadTimesOut(t *testing.T) {
	o := newOrigin(t, "o")
	release := make(chan struct{})
	defer close(release)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		select { // stall
		case <-release:
		case <-r.Context().Done():
		}
	})
	p := newTestPool(t, Config{Origins: servers(o), Timeouts: Timeouts{IdleRead: 100 * time.Millisecond}})

	resp, err := p.RoundTrip(httptestRequest(t))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()

	assert.Equal(t, "first", string(body))
	require.ErrorIs(t, err, ErrBodyTimeout)
	var oe *Error
	require.ErrorAs(t, err, &oe)
	assert.True(t, oe.Timeout())
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "a net.Error timeout")
	st := p.Servers()[0]
	assert.Equal(t, uint64(1), st.Failures, "a stalled body is a failure of the server")
	assert.Zero(t, st.InFlight)
}

func TestSlowSteadyBodyDoesNotTimeOut(t *testing.T) {
	o := newOrigin(t, "o")
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(20 * time.Millisecond) // a slow origin, well within the idle timeout
		defer tick.Stop()
		for range 10 {
			<-tick.C
			io.WriteString(w, "chunk")
			http.NewResponseController(w).Flush()
		}
	})
	p := newTestPool(t, Config{Origins: servers(o), Timeouts: Timeouts{IdleRead: 150 * time.Millisecond}})

	status, body, err := fetch(t, p, "http://static.example.com/slow.mp4")

	require.NoError(t, err, "a body taking longer than the idle timeout, in steady chunks")
	assert.Equal(t, http.StatusOK, status)
	assert.Len(t, body, 50)
	assert.Zero(t, p.Servers()[0].Failures)
}

func TestResponseHeaderTimeoutIsTimeout(t *testing.T) {
	o := newOrigin(t, "o")
	release := make(chan struct{})
	defer close(release)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	p := newTestPool(t, Config{Origins: servers(o), Timeouts: Timeouts{ResponseHeader: 50 * time.Millisecond}})

	_, _, err := fetch(t, p, "http://static.example.com/a.png")

	var oe *Error
	require.ErrorAs(t, err, &oe)
	assert.True(t, oe.Timeout(), "%v", err)
}

func httptestRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://static.example.com/a.png", nil)
	require.NoError(t, err)
	return req
}
