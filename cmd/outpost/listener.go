package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/internal/httpguard"
	"github.com/prometheus/client_golang/prometheus"
)

// The public listener is a chain, outermost last:
//
//	TCP → send timeout → connection limit → TLS handshake (HTTPS) → framing guard (HTTP/1.1)
//
// Each wrapper keeps ReadFrom (sendfile) and CloseWrite of the one below.

// connLimit bounds the public connections open at once (limits.max_connections).
// A connection over the limit is answered 503 (plain HTTP) and closed at
// once, rather than left queued in the kernel where a flood of idle
// connections would starve everyone.
type connLimit struct {
	net.Listener
	max     int64
	plain   bool // the listener speaks plain HTTP: refusals get a 503
	open    atomic.Int64
	refused prometheus.Counter
}

func newConnLimit(ln net.Listener, max int64, plain bool, reg prometheus.Registerer) *connLimit {
	l := &connLimit{Listener: ln, max: max, plain: plain}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_http_connections_refused_total",
		Help: "Public connections refused because limits.max_connections were open (answered 503 and closed).",
	})
	reg.MustRegister(l.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_http_connections",
		Help: "Public connections open.",
	}, func() float64 { return float64(l.open.Load()) }))
	return l
}

// refusal is what a connection over the limit receives.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nCache-Control: no-store\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 44\r\n\r\n503 Service Unavailable: too many connections\n"

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Inc()
		if l.plain {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, refusal)
		}
		c.Close()
	}
}

// limitedConn frees its slot of the connection limit when closed.
type limitedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// WriteBuffers writes b with writev where the connection below can.
func (c *limitedConn) WriteBuffers(b *net.Buffers) (int64, error) {
	if bw, ok := c.Conn.(interface {
		WriteBuffers(*net.Buffers) (int64, error)
	}); ok {
		return bw.WriteBuffers(b)
	}
	return b.WriteTo(c.Conn)
}

func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tlsListener completes TLS handshakes off the accept loop, each within
// timeout, and hands net/http a *tls.Conn when the client chose HTTP/2
// (ALPN h2: net/http serves HTTP/2 only on a *tls.Conn, and HTTP/2 framing
// needs no guard) and a guarded connection for HTTP/1.1. A client that
// never finishes its handshake holds only its own goroutine.
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	guard   *httpguard.Guard
	timeout time.Duration
	log     *slog.Logger

	start  sync.Once
	conns  chan net.Conn
	errc   chan error // the inner listener's fatal error, once
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

func newTLSListener(ln net.Listener, cfg *tls.Config, guard *httpguard.Guard, timeout time.Duration, log *slog.Logger) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	return &tlsListener{
		Listener: ln, cfg: cfg, guard: guard, timeout: timeout, log: log,
		conns: make(chan net.Conn), errc: make(chan error, 1), ctx: ctx, cancel: cancel,
	}
}

// Accept returns the next connection whose handshake is done. The accept
// loop starts with the first call, after net/http has set up HTTP/2.
func (l *tlsListener) Accept() (net.Conn, error) {
	l.start.Do(func() { l.wg.Go(l.acceptLoop) })
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// What net/http does for temporary errors: wait, retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-l.ctx.Done():
					return
				}
			}
			l.errc <- err
			return
		}
		backoff = 0
		l.wg.Go(func() { l.handshake(c) })
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	var out net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		out = l.guard.TLSConn(tc)
	}
	select {
	case l.conns <- out:
	case <-l.ctx.Done():
		c.Close()
	}
}

// looksLikeHTTP reports whether the first bytes of a failed TLS handshake
// are a plain HTTP request (net/http answers those with a 400 too).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// Close stops accepting, ends the handshakes in progress and waits for
// them.
func (l *tlsListener) Close() error {
	var err error
	l.closed.Do(func() {
		l.cancel()
		err = l.Listener.Close()
		l.wg.Wait()
	})
	return err
}
