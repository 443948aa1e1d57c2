package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-cdn/outpost/internal/httpguard"
	"golang.org/x/net/http/httpguts"
)

// The fast path (fast_path: true) serves plain HTTP/1.1 without net/http's
// connection loop. It reads request heads from the guarded connection
// itself; a GET or HEAD it fully understands (parseFast) runs through the
// same handler chain as every other request, with a ResponseWriter that
// renders the status line and header fields straight into a buffer and
// sends them with the body in one write. Anything else hands the whole
// connection, with the bytes already read replayed first, to the
// http.Server for the rest of its life (handoffListener).
//
//	public listener (send timeout, limit, guard) → fastServer ─┬→ fastConn: GET/HEAD it understands
//	                                                           └→ handoffListener → http.Server
//
// The guard stays below: it passes on only complete, checked heads, answers
// (through a synthetic request the fast path hands off) what it refuses, and
// frames bodies, so both paths see the same bytes the same way.

// fastServer accepts the public connections and serves each in a fastConn
// goroutine it owns until the connection closes or is handed off.
type fastServer struct {
	ln            net.Listener // the guarded public listener
	handler       http.Handler // the same chain the http.Server runs
	srv           *http.Server // for ServerContextKey, and timeouts
	connContext   func(context.Context, net.Conn) context.Context
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxHead       int
	log           *slog.Logger
	handoff       *handoffListener

	served   atomic.Int64 // requests answered on the fast path
	handoffs atomic.Int64 // connections handed to net/http

	closing   atomic.Bool
	accepting chan struct{} // closed when serve returns: no connection is added after
	mu        sync.Mutex
	conns     map[*fastConn]struct{}
	wg        sync.WaitGroup
}

func newFastServer(ln net.Listener, srv *http.Server, maxHead int, log *slog.Logger) *fastServer {
	s := &fastServer{
		ln: ln, handler: srv.Handler, srv: srv, connContext: srv.ConnContext,
		headerTimeout: srv.ReadHeaderTimeout, idleTimeout: srv.IdleTimeout,
		maxHead: maxHead, log: log, conns: map[*fastConn]struct{}{}, accepting: make(chan struct{}),
	}
	if s.idleTimeout == 0 {
		s.idleTimeout = s.headerTimeout // as net/http
	}
	s.handoff = &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), close: ln.Close}
	return s
}

// serve accepts connections until the listener is closed; it returns nil
// then, or the listener's fatal error.
func (s *fastServer) serve() error {
	defer close(s.accepting)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("fast path: accept: %w", err)
		}
		backoff = 0
		fc := s.newConn(c)
		if fc == nil {
			if s.closing.Load() {
				c.Close()
				return nil
			}
			continue // handed to net/http whole
		}
		s.wg.Go(fc.serve)
	}
}

// shutdown stops accepting, closes the idle connections, and waits until
// the busy ones have answered their request, or ctx is done (then it
// closes them).
func (s *fastServer) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.ln.Close()
	select { // serve adds no connection to wg once it has returned
	case <-s.accepting:
	case <-ctx.Done():
		s.closeAll()
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }() // ends when the last fastConn does
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for fc := range s.conns {
			if fc.idle.Load() {
				fc.c.SetReadDeadline(aborted) // wakes its read; it sees closing
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeAll closes every connection the fast path serves.
func (s *fastServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		fc.c.Close()
	}
}

// aborted is a read deadline in the past: it ends a read at once, and the
// guard takes it for an abort, not a timeout.
var aborted = time.Unix(1, 0)

// guardedTLS is an HTTP/1.1 connection over TLS as the guard hands it on
// (httpguard.Guard.TLSConn).
type guardedTLS interface {
	Guarded() *httpguard.Conn
	ConnectionState() tls.ConnectionState
}

// newConn returns the fastConn serving c, or nil when the server has
// stopped. A connection the fast path cannot read (HTTP/2 over TLS) goes
// to net/http at once.
func (s *fastServer) newConn(c net.Conn) *fastConn {
	var fc *fastConn
	switch gc := c.(type) {
	case *httpguard.Conn:
		fc = &fastConn{s: s, c: gc, wc: gc.Conn, remote: c.RemoteAddr().String()}
	case guardedTLS:
		st := gc.ConnectionState()
		g := gc.Guarded()
		fc = &fastConn{s: s, c: g, wc: g.Conn, remote: c.RemoteAddr().String(), tls: &st}
	case *tls.Conn: // ALPN h2: the guard passes these on as they are
		s.handoffs.Add(1)
		s.handoff.give(c)
		return nil
	default:
		return nil // the guard is part of the chain: never without it
	}
	ctx := context.WithValue(context.Background(), http.ServerContextKey, s.srv)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	if s.connContext != nil {
		ctx = s.connContext(ctx, c)
	}
	fc.ctx, fc.cancel = context.WithCancel(ctx)
	fc.w.fc = fc
	fc.w.hdr = make(http.Header, 16)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	s.conns[fc] = struct{}{}
	return fc
}

// handoffListener hands net/http the connections the fast path gives up.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	close func() error // closes the public listener
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close ends Accept and closes the public listener (http.Server.Shutdown
// and Close call it). The fast path's shutdown closes that listener first:
// that is no error here, or Shutdown would report one and the node would
// cut the connections net/http is draining.
func (l *handoffListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		if err = l.close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give passes c to net/http, or closes it when the server has stopped.
func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// replayConn is a connection whose first reads return bytes the fast path
// had read already. It keeps the guard Conn's ReadFrom and CloseWrite.
type replayConn struct {
	*httpguard.Conn
	pending []byte
	bufp    *[]byte // pending's pooled backing
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			putReadBuf(c.bufp)
			c.bufp = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// replayTLSConn is a replayConn over TLS: it reports the connection's
// state, as the guard's own TLS connection does.
type replayTLSConn struct {
	*replayConn
	state tls.ConnectionState
}

func (c *replayTLSConn) ConnectionState() tls.ConnectionState { return c.state }

// guardConnContext lets the guard find its Conn behind a replayConn.
func guardConnContext(g func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		switch rc := c.(type) {
		case *replayConn:
			return g(ctx, rc.Conn)
		case *replayTLSConn:
			return g(ctx, rc.Conn)
		}
		return g(ctx, c)
	}
}

// readBufSize is the size of the pooled buffers request heads are read
// into; a larger head grows its own, up to the guard's limit.
const readBufSize = 4 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// putReadBuf gives a read buffer back, unless it was grown for a large head.
func putReadBuf(bp *[]byte) {
	if bp != nil && len(*bp) == readBufSize {
		readBufs.Put(bp)
	}
}

// fastConn serves one connection.
type fastConn struct {
	s      *fastServer
	c      *httpguard.Conn // reads: checked by the guard
	wc     net.Conn        // writes: the connection below the guard
	remote string
	ctx    context.Context
	cancel context.CancelFunc
	idle   atomic.Bool // waiting for a request head

	idleUntil time.Time // the idle read deadline armRead set last

	rbufp      *[]byte
	rbuf       []byte // read buffer; rbuf[r0:r1] is unparsed
	r0, r1     int
	handedOff  bool
	tls        *tls.ConnectionState // HTTPS: every request's Request.TLS; nil over plain HTTP
	w          fastWriter
	sortedKeys []string
}

func (fc *fastConn) serve() {
	defer func() {
		if v := recover(); v != nil { // outside a handler: a bug of ours; this connection ends, the node serves on
			fc.s.log.Error("fast path: panic", "remote", fc.remote, "panic", fmt.Sprint(v))
		}
		fc.s.mu.Lock()
		delete(fc.s.conns, fc)
		fc.s.mu.Unlock()
		fc.cancel()
		if !fc.handedOff {
			fc.c.Close()
			putReadBuf(fc.rbufp)
		}
		fc.w.release()
	}()
	fc.rbufp = readBufs.Get().(*[]byte)
	fc.rbuf = *fc.rbufp
	for first := true; ; first = false {
		head, err := fc.readHead(first)
		if err != nil {
			return
		}
		if head < 0 {
			fc.handOff()
			return
		}
		req, ok := parseFast(fc.rbuf[fc.r0:fc.r0+head], fc.remote)
		if !ok {
			fc.handOff()
			return
		}
		fc.r0 += head
		req.TLS = fc.tls
		if !fc.serveRequest(&req) || fc.s.closing.Load() {
			return
		}
	}
}

// readHead makes sure rbuf[r0:] starts with a whole request head and
// returns its length, or -1 when what is there is no head the fast path
// can take (a body, a head too large, the guard's synthetic request). An
// error (or the server closing while idle) ends the connection.
func (fc *fastConn) readHead(first bool) (int, error) {
	for {
		if n := headEnd(fc.rbuf[fc.r0:fc.r1]); n > 0 {
			return n, nil
		}
		if fc.r1-fc.r0 >= 3 && !startsLikeHead(fc.rbuf[fc.r0:fc.r1]) {
			return -1, nil
		}
		if fc.r0 > 0 { // room at the end for the rest of the head
			n := copy(fc.rbuf, fc.rbuf[fc.r0:fc.r1])
			fc.r0, fc.r1 = 0, n
		}
		if fc.r1 == len(fc.rbuf) {
			if len(fc.rbuf) >= fc.s.maxHead {
				return -1, nil
			}
			nb := make([]byte, 2*len(fc.rbuf)) // a large head: its own buffer
			copy(nb, fc.rbuf[:fc.r1])
			putReadBuf(fc.rbufp)
			fc.rbufp, fc.rbuf = &nb, nb
		}
		if fc.r1 == 0 {
			// Waiting for a request: the header timeout for the first
			// (as net/http), the idle timeout after. The guard passes on
			// only whole heads, so this covers the head too.
			fc.armRead(first)
			fc.idle.Store(true)
			if fc.s.closing.Load() {
				return 0, net.ErrClosed
			}
		}
		n, err := fc.c.Read(fc.rbuf[fc.r1:])
		fc.idle.Store(false)
		fc.r1 += n
		if n > 0 {
			continue
		}
		if err != nil {
			return 0, err
		}
	}
}

// armRead sets the read deadline for the wait for a request: the header
// timeout for the first (as net/http), the idle timeout after. The guard
// passes on only whole heads, so it covers the head too. As the send
// timeout's arm, an idle deadline is set d/8 long and renewed only when
// less than d is left, which saves a runtime timer update per request on a
// busy connection: the wait gets between d and 9/8 d.
func (fc *fastConn) armRead(first bool) {
	d := fc.s.idleTimeout
	if first {
		d = fc.s.headerTimeout
	}
	if d <= 0 {
		return
	}
	now := time.Now()
	if first {
		fc.c.SetReadDeadline(now.Add(d))
		return
	}
	if !fc.idleUntil.IsZero() && fc.idleUntil.Sub(now) >= d {
		return
	}
	fc.idleUntil = now.Add(d + d/8)
	fc.c.SetReadDeadline(fc.idleUntil)
}

// headEnd returns the length of the head at the start of b (through its
// empty line), or 0 when b holds no whole head. The guard refuses bare LF
// line ends, so CRLF CRLF ends every head it passes on.
func headEnd(b []byte) int {
	for i := 3; i < len(b); i++ {
		if b[i] == '\n' && b[i-1] == '\r' && b[i-2] == '\n' && b[i-3] == '\r' {
			return i + 1
		}
	}
	return 0
}

func startsLikeHead(b []byte) bool {
	return string(b[:3]) == "GET" || string(b[:3]) == "HEA"
}

// handOff gives the connection to net/http with the unparsed bytes first.
func (fc *fastConn) handOff() {
	fc.handedOff = true
	fc.s.handoffs.Add(1)
	rc := &replayConn{Conn: fc.c}
	if fc.r1 > fc.r0 {
		rc.pending, rc.bufp = fc.rbuf[fc.r0:fc.r1], fc.rbufp
	} else {
		putReadBuf(fc.rbufp)
	}
	fc.rbufp, fc.rbuf = nil, nil
	fc.c.SetReadDeadline(time.Time{})
	if fc.tls != nil {
		fc.s.handoff.give(&replayTLSConn{rc, *fc.tls}) // net/http sets Request.TLS from it
		return
	}
	fc.s.handoff.give(rc)
}

// serveRequest runs the handler for req and reports whether the
// connection may serve another request.
func (fc *fastConn) serveRequest(parsed *http.Request) (keep bool) {
	ctx, cancel := context.WithCancel(fc.ctx)
	defer cancel()
	req := parsed.WithContext(ctx)
	w := &fc.w
	w.reset(req, fc.s.closing.Load())
	defer func() {
		if v := recover(); v != nil {
			// As net/http: the connection ends; recoverPanics has
			// logged and answered every panic but the edge's aborts.
			if v != http.ErrAbortHandler {
				stack := make([]byte, 64<<10)
				stack = stack[:runtime.Stack(stack, false)]
				fc.s.log.Error("fast path: handler panic", "remote", fc.remote, "panic", fmt.Sprint(v), "stack", string(stack))
			}
			keep = false
		}
	}()
	fc.s.handler.ServeHTTP(w, req)
	fc.s.served.Add(1)
	return w.finish()
}

// parseFast parses a request head the guard has passed, into a request
// the fast path serves, or reports false: anything but a plain GET or HEAD
// in origin form, without a body, expectations or upgrades, with one Host,
// goes to net/http, which answers or refuses it as it always does. Header
// field names and values are checked as net/http checks them.
//
// The request comes back by value: serveRequest's WithContext makes the
// one copy that reaches the handler.
func parseFast(b []byte, remote string) (r http.Request, ok bool) {
	head := string(b) // one allocation: the target and every value are substrings
	var method string
	switch {
	case len(head) > 4 && head[:4] == "GET ":
		method, head = http.MethodGet, head[4:]
	case len(head) > 5 && head[:5] == "HEAD ":
		method, head = http.MethodHead, head[5:]
	default:
		return r, false
	}
	eol := indexCRLF(head)
	if eol < 0 {
		return r, false
	}
	line := head[:eol]
	sp := len(line) - len(" HTTP/1.1")
	if sp < 1 || line[sp] != ' ' {
		return r, false
	}
	target, proto := line[:sp], line[sp+1:]
	minor := 1
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		minor = 0
	default:
		return r, false
	}
	if target[0] != '/' || target == httpguard.RejectedTarget {
		return r, false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return r, false
		}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return r, false
	}
	head = head[eol+2:]
	lines := 0
	for i := 0; i+1 < len(head); i++ {
		if head[i] == '\r' {
			lines++
		}
	}
	hdr := make(http.Header, lines)
	vals := make([]string, lines) // one backing array for single values
	host, hosts := "", 0
	var conn []string
	for len(head) > 2 {
		eol := indexCRLF(head)
		if eol < 0 {
			return r, false
		}
		field := head[:eol]
		head = head[eol+2:]
		colon := -1
		for i := 0; i < len(field); i++ {
			if field[i] == ':' {
				colon = i
				break
			}
			if !httpguts.IsTokenRune(rune(field[i])) {
				return r, false
			}
		}
		if colon <= 0 {
			return r, false
		}
		v := strings.Trim(field[colon+1:], " \t")
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
				return r, false
			}
		}
		k := textproto.CanonicalMIMEHeaderKey(field[:colon]) // no allocation when canonical already
		switch k {
		case "Host":
			host, hosts = v, hosts+1
			continue // as net/http: Request.Host, not a header field
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Trailer", "Http2-Settings":
			return r, false
		case "Connection":
			if !plainConnection(v) {
				return r, false
			}
		}
		if vv, ok := hdr[k]; ok {
			hdr[k] = append(vv, v)
			continue
		}
		vals[0] = v
		hdr[k], vals = vals[:1:1], vals[1:]
	}
	if hosts != 1 || host == "" || !httpguts.ValidHostHeader(host) {
		return r, false
	}
	conn = hdr["Connection"]
	if hp, ok := hdr["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	close := httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 {
		close = close || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	}
	proto = "HTTP/1.1"
	if minor == 0 {
		proto = "HTTP/1.0"
	}
	return http.Request{
		Method: method, URL: u, Proto: proto, ProtoMajor: 1, ProtoMinor: minor,
		Header: hdr, Body: http.NoBody, Host: host, RequestURI: target,
		RemoteAddr: remote, Close: close,
	}, true
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' {
			if s[i+1] != '\n' {
				return -1
			}
			return i
		}
	}
	return -1
}

// plainConnection reports whether a Connection value holds only "close"
// and "keep-alive": other options (Upgrade, hop-by-hop field names) go to
// net/http.
func plainConnection(v string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if t = strings.Trim(t, " \t"); t != "" && !equalFold(t, "close") && !equalFold(t, "keep-alive") {
			return false
		}
	}
	return true
}

// equalFold is strings.EqualFold for ASCII only, as net/http compares
// tokens: "\u212Aeep-alive" is not "keep-alive".
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// httpDate caches the Date field value for the current second.
var httpDate atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	b   []byte
}

func currentDate() []byte {
	now := time.Now()
	if d := httpDate.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateValue{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	httpDate.Store(d)
	return d.b
}
