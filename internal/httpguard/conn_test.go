package httpguard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pieces is a net.Conn that reads from in, in pieces of the sizes a seeded
// generator picks, and discards writes.
type pieces struct {
	net.Conn
	in  []byte
	rnd *mrand.Rand
	max int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.in) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(p.in), 1+p.rnd.IntN(p.max))
	copy(b, p.in[:n])
	p.in = p.in[n:]
	return n, nil
}

func (p *pieces) Write(b []byte) (int, error)        { return len(b), nil }
func (p *pieces) Close() error                       { return nil }
func (p *pieces) SetReadDeadline(time.Time) error    { return nil }
func (p *pieces) SetDeadline(time.Time) error        { return nil }
func (p *pieces) SetWriteDeadline(t time.Time) error { return nil }

func newTestGuard(t testing.TB, cfg Config) *Guard {
	t.Helper()
	g, err := New(cfg)
	require.NoError(t, err)
	return g
}

// readAll reads c to its end with buffers of the sizes net/http uses (4
// KiB, and 1 byte for its background read).
func readAll(c net.Conn, rnd *mrand.Rand) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		b := buf
		if rnd.IntN(4) == 0 {
			b = buf[:1]
		}
		n, err := c.Read(b)
		out = append(out, b[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// FuzzConnPassesWhatScanAccepts: however the bytes arrive and however
// they are read, a Conn passes exactly the bytes a scan of the whole input
// accepts, then the synthetic request when a head was refused.
func FuzzConnPassesWhatScanAccepts(f *testing.F) {
	for i, tt := range scanTests {
		f.Add([]byte(tt.give), uint64(i))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		g := &Guard{lim: testLimits}
		s := scanner{lim: &testLimits, first: true}
		k := s.scan(in)
		want := append([]byte(nil), in[:k]...)
		if s.st == stDead && s.fault != faultChunk {
			want = append(want, synthetic...)
		}
		rnd := mrand.New(mrand.NewPCG(seed, seed>>7))
		c := &Conn{Conn: &pieces{in: in, rnd: rnd, max: 1 + int(seed%600)}, g: g, s: scanner{lim: &g.lim, first: true}}
		for f := range g.rejected {
			g.rejected[f] = prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
		}
		for p := range g.timeouts {
			g.timeouts[p] = prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
		}
		got, err := readAll(c, rnd)
		if !bytes.Equal(got, want) {
			t.Fatalf("passed %q\nwant %q\n(err %v)", got, want, err)
		}
	})
}

// server runs an http.Server on loopback behind a Guard and records the
// requests its handler saw.
type server struct {
	g    *Guard
	srv  *http.Server
	addr string
	reg  *prometheus.Registry
	seen chan string
	done chan struct{}
}

func startServer(t *testing.T, cfg Config, configure func(*http.Server)) *server {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	g := newTestGuard(t, cfg)
	s := &server{g: g, reg: reg, seen: make(chan string, 100), done: make(chan struct{})}
	s.srv = &http.Server{
		Handler: g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
				return
			}
			s.seen <- r.Method + " " + r.RequestURI + " " + string(b)
			io.WriteString(w, "ok "+r.RequestURI)
		})),
		ConnContext:       g.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    g.MaxHead() + 4096,
		ErrorLog:          nil,
	}
	if configure != nil {
		configure(s.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	go func() {
		defer close(s.done)
		s.srv.Serve(g.Listener(ln))
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-s.done
	})
	return s
}

// exchange sends raw on a new connection and returns everything the
// server answers until it closes the connection or goes quiet for idle.
func exchange(t *testing.T, addr, raw string, idle time.Duration) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	var out []byte
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			closed := !(errorsAs(err, &ne) && ne.Timeout())
			return string(out), closed
		}
	}
}

func errorsAs(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

func (s *server) requests() []string {
	var out []string
	for {
		select {
		case r := <-s.seen:
			out = append(out, r)
		default:
			return out
		}
	}
}

func TestSmugglingAttemptsAreRefusedAndClosed(t *testing.T) {
	s := startServer(t, Config{}, nil)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, te := range []string{
		"Transfer-Encoding: chunked",
		"Transfer-Encoding: CHUNKED",
		"Transfer-Encoding:\tchunked",
		"Transfer-Encoding:  chunked",
		"Transfer-Encoding: chunked ",
		"transfer-encoding: chunked",
		"Transfer-Encoding:\r\n chunked",
		"Transfer-Encoding: x\r\nTransfer-Encoding: chunked",
	} {
		t.Run(te, func(t *testing.T) {
			raw := "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" +
				"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n" + te + "\r\n\r\n0\r\n\r\n" + smuggled
			out, closed := exchange(t, s.addr, raw, 5*time.Second)
			assert.True(t, closed, "connection closed")
			assert.Equal(t, 2, strings.Count(out, "HTTP/1.1 "), "two answers: %q", out)
			assert.Contains(t, out, "ok /first")
			assert.Contains(t, out, "HTTP/1.1 400 Bad Request\r\n")
			assert.Contains(t, out, "Connection: close\r\n")
			assert.Equal(t, []string{"GET /first "}, s.requests(), "only the first request reached the handler")
		})
	}
	assert.GreaterOrEqual(t, value(s.g.rejected[faultCLTE]), 6.0)
}

func TestPipelinedRequestsWithBodies(t *testing.T) {
	s := startServer(t, Config{}, nil)
	raw := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	out, closed := exchange(t, s.addr, raw, 5*time.Second)
	assert.True(t, closed)
	assert.Equal(t, 3, strings.Count(out, "HTTP/1.1 200 OK"), out)
	assert.Equal(t, []string{"POST /a hello", "POST /b abcde", "GET /c "}, s.requests())
}

func TestRequestBytesOneAtATime(t *testing.T) {
	s := startServer(t, Config{}, nil)
	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer c.Close()
	raw := "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	for i := range len(raw) {
		_, err := c.Write([]byte{raw[i]})
		require.NoError(t, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(out), "HTTP/1.1 200 OK"), string(out))
	assert.Equal(t, []string{"GET /a ", "GET /b "}, s.requests())
}

func TestLimitsAnswerTheirStatus(t *testing.T) {
	s := startServer(t, Config{MaxRequestLine: 100, MaxHeaderBytes: 1000, MaxHeaderCount: 5}, nil)
	for _, tt := range []struct {
		give       string
		wantStatus string
		wantReason string
	}{
		{"GET /" + strings.Repeat("a", 200) + " HTTP/1.1\r\nHost: a\r\n\r\n", "414 Request URI Too Long", "request_line_length"},
		{"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 5) + "\r\n", "431 Request Header Fields Too Large", "header_count"},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 1000) + "\r\n\r\n", "431 Request Header Fields Too Large", "header_bytes"},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "405 Method Not Allowed", "connect"},
	} {
		out, closed := exchange(t, s.addr, tt.give, 5*time.Second)
		assert.True(t, closed)
		assert.True(t, strings.HasPrefix(out, "HTTP/1.1 "+tt.wantStatus+"\r\n"), "answer %q", out)
		f := faultNone
		for i := range faults {
			if faults[i].label == tt.wantReason {
				f = fault(i)
			}
		}
		assert.Equal(t, 1.0, value(s.g.rejected[f]), tt.wantReason)
	}
	assert.Empty(t, s.requests())
}

func TestSlowHeaderGets408(t *testing.T) {
	s := startServer(t, Config{}, func(srv *http.Server) { srv.ReadHeaderTimeout = 200 * time.Millisecond })
	out, closed := exchange(t, s.addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ", 10*time.Second)
	assert.True(t, closed)
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 408 Request Timeout\r\n"), "answer %q", out)
	assert.Equal(t, 1.0, value(s.g.timeouts[phaseHeader]))
	assert.Empty(t, s.requests())
}

func TestIdleConnectionIsClosedSilently(t *testing.T) {
	s := startServer(t, Config{}, func(srv *http.Server) { srv.IdleTimeout = 200 * time.Millisecond })
	out, closed := exchange(t, s.addr, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", 10*time.Second)
	assert.True(t, closed)
	assert.Equal(t, 1, strings.Count(out, "HTTP/1.1 "), "one answer, no 408 for idling: %q", out)
	assert.Equal(t, 1.0, value(s.g.timeouts[phaseIdle]))
}

func TestStalledBodyTimesOut(t *testing.T) {
	s := startServer(t, Config{BodyTimeout: 200 * time.Millisecond}, nil)
	out, closed := exchange(t, s.addr, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 10*time.Second)
	assert.True(t, closed)
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 400 Bad Request\r\n"), "the handler saw a read error: %q", out)
	assert.Equal(t, 1.0, value(s.g.timeouts[phaseBody]))
	assert.Empty(t, s.requests())

	// A body that keeps coming is not cut off, and the deadline goes
	// away after it.
	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "POST /q HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
	for _, part := range []string{"ab", "cd", "ef"} {
		time.Sleep(120 * time.Millisecond) // under the body timeout each time
		io.WriteString(c, part)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	time.Sleep(300 * time.Millisecond) // longer than the body timeout, idle
	io.WriteString(c, "GET /r HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, []string{"POST /q abcdef", "GET /r "}, s.requests())
}

func TestClientSentRejectedTargetIsAnOrdinaryRequest(t *testing.T) {
	s := startServer(t, Config{}, nil)
	out, _ := exchange(t, s.addr, "GET "+rejectedTarget+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second)
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n"), out)
}

func TestTLSConn(t *testing.T) {
	cert, roots := selfSigned(t)
	reg := prometheus.NewRegistry()
	g := newTestGuard(t, Config{Registerer: reg})
	var sawTLS atomic.Bool
	srv := &http.Server{
		Handler: g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawTLS.Store(r.TLS != nil)
			io.WriteString(w, r.Proto)
		})),
		ConnContext: g.ConnContext,
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tl := &tlsTestListener{Listener: ln, cfg: srv.TLSConfig, g: g}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(tl) }()
	defer func() { srv.Close(); <-done }()

	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + ln.Addr().String() + "/")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		want := "HTTP/1.1"
		if h2 {
			want = "HTTP/2.0"
		}
		assert.Equal(t, want, string(b))
		assert.True(t, sawTLS.Load(), "Request.TLS set")
	}

	// HTTP/1.1 over TLS is guarded.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	assert.True(t, strings.HasPrefix(string(out), "HTTP/1.1 400 Bad Request\r\n"), string(out))
}

// tlsTestListener hands net/http *tls.Conn for h2 and a guarded conn for
// HTTP/1.1, as cmd/outpost's listener does.
type tlsTestListener struct {
	net.Listener
	cfg *tls.Config
	g   *Guard
}

func (l *tlsTestListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		return tc, nil
	}
	return l.g.TLSConn(tc), nil
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpguard test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	parsed, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, roots
}

// repeating is a net.Conn that returns the same request head on every
// read: what a keep-alive client sends, one request per read.
type repeating struct {
	net.Conn
	req []byte
}

func (r *repeating) Read(b []byte) (int, error)      { return copy(b, r.req), nil }
func (r *repeating) SetReadDeadline(time.Time) error { return nil }

// benchHeads are request heads as a benchmark tool and a browser send them.
var benchHeads = []struct {
	name string
	req  string
}{
	{"wrk", "GET /1k HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"},
	{"browser", "GET /static/app.5f3a.css HTTP/1.1\r\nHost: static.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/css,*/*;q=0.1\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Referer: https://static.example.com/\r\nConnection: keep-alive\r\nSec-Fetch-Dest: style\r\n" +
		"Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\nIf-None-Match: \"5f3a\"\r\nPriority: u=2\r\n\r\n"},
}

// BenchmarkConnRead is the Conn's cost per request on the hit path: one
// read of a whole request head, checked where it landed. Compare with
// BenchmarkNetHTTPReadRequest, what net/http spends parsing the same head.
func BenchmarkConnRead(b *testing.B) {
	for _, bc := range benchHeads {
		b.Run(bc.name, func(b *testing.B) {
			g := newTestGuard(b, Config{})
			c := g.Conn(&repeating{req: []byte(bc.req)})
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(bc.req)))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := c.Read(buf); n != len(bc.req) || err != nil {
					b.Fatalf("read %d, %v", n, err)
				}
			}
		})
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// BenchmarkNetHTTPReadRequest is net/http's own parse of the heads of
// BenchmarkConnRead, for scale.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	for _, bc := range benchHeads {
		b.Run(bc.name, func(b *testing.B) {
			rd := bytes.NewReader(nil)
			br := bufio.NewReader(rd)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset([]byte(bc.req))
				br.Reset(rd)
				if _, err := http.ReadRequest(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerRoundTrip is a keep-alive GET to an http.Server over
// loopback, with and without the Guard: the Guard's share of a whole
// exchange.
func BenchmarkServerRoundTrip(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "plain"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			g := newTestGuard(b, Config{})
			var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
			srv := &http.Server{Handler: h}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			if guarded {
				srv.Handler, srv.ConnContext = g.Handler(h), g.ConnContext
				ln = g.Listener(ln)
			}
			done := make(chan struct{})
			go func() { defer close(done); srv.Serve(ln) }()
			defer func() { srv.Close(); <-done }()
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(b, err)
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte("GET /1k HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
