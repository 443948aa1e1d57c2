package httpguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Guard. Zero values take the defaults named.
type Config struct {
	// MaxRequestLine bounds the request line in bytes; a longer one is
	// answered 414. Zero means 8 KiB.
	MaxRequestLine int
	// MaxHeaderBytes bounds the request head (request line, header
	// fields and their line ends) in bytes; a larger one is answered 431.
	// Zero means 32 KiB. The http.Server's MaxHeaderBytes should be
	// larger, so the Guard is the one that answers.
	MaxHeaderBytes int
	// MaxHeaderCount bounds the header field lines of a request; more
	// are answered 431. Zero means 100.
	MaxHeaderCount int
	// BodyTimeout is how long each read of a request body may wait for
	// the client (nginx's client_body_timeout): a client that sends
	// nothing of its body for this long gets a read error in its handler
	// and loses the connection. Zero means no such timeout.
	BodyTimeout time.Duration
	// UnencryptedHTTP2 passes a connection that starts with the HTTP/2
	// preface through unframed, for a server that speaks HTTP/2 with prior
	// knowledge (http.Protocols.SetUnencryptedHTTP2). Off: the preface is
	// refused like any HTTP/2.0 request line.
	UnencryptedHTTP2 bool
	// Registerer receives the Guard's metrics. Nil registers none.
	Registerer prometheus.Registerer
}

// Guard checks the framing of the HTTP/1.1 connections it wraps (Listener,
// Conn, TLSConn) and answers the requests it refused (Handler). It is safe
// for concurrent use.
type Guard struct {
	lim         limits
	bodyTimeout time.Duration
	rejected    [numFaults]prometheus.Counter
	timeouts    [numPhases]prometheus.Counter
}

// Phases of a connection named in outpost_http_timeouts_total.
const (
	phaseHeader = iota // part of a request head arrived, not all of it
	phaseBody          // a request body stalled
	phaseIdle          // no request arrived on a kept-alive connection
	numPhases
)

// New returns a Guard for cfg, or an error naming a bad field.
func New(cfg Config) (*Guard, error) {
	for _, v := range []struct {
		name string
		v    int
	}{{"MaxRequestLine", cfg.MaxRequestLine}, {"MaxHeaderBytes", cfg.MaxHeaderBytes}, {"MaxHeaderCount", cfg.MaxHeaderCount}} {
		if v.v < 0 {
			return nil, fmt.Errorf("httpguard: %s %d is negative", v.name, v.v)
		}
	}
	if cfg.BodyTimeout < 0 {
		return nil, fmt.Errorf("httpguard: BodyTimeout %v is negative", cfg.BodyTimeout)
	}
	g := &Guard{
		lim: limits{
			requestLine: orDefault(cfg.MaxRequestLine, 8<<10),
			headerBytes: orDefault(cfg.MaxHeaderBytes, 32<<10),
			headerCount: orDefault(cfg.MaxHeaderCount, 100),
			h2c:         cfg.UnencryptedHTTP2,
		},
		bodyTimeout: cfg.BodyTimeout,
	}
	if g.lim.requestLine+2 > g.lim.headerBytes {
		return nil, fmt.Errorf("httpguard: MaxRequestLine %d does not fit in MaxHeaderBytes %d", g.lim.requestLine, g.lim.headerBytes)
	}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_http_rejected_total",
		Help: "HTTP/1.1 requests refused before any handler ran, by reason (ambiguous framing, limits).",
	}, []string{"reason"})
	timeouts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_http_timeouts_total",
		Help: "Client connections that timed out reading, by phase (header: answered 408; body; idle: closed).",
	}, []string{"phase"})
	for f := faultNone + 1; f < numFaults; f++ {
		g.rejected[f] = rejected.WithLabelValues(faults[f].label)
	}
	for p, name := range [numPhases]string{"header", "body", "idle"} {
		g.timeouts[p] = timeouts.WithLabelValues(name)
	}
	if err := promreg.Register(cfg.Registerer, "httpguard", rejected, timeouts); err != nil {
		return nil, err
	}
	return g, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// MaxHead is the most bytes a request head can take before the Guard
// refuses it: the http.Server's MaxHeaderBytes should be at least this.
func (g *Guard) MaxHead() int { return g.lim.headerBytes }

// Listener returns a listener whose connections are guarded.
func (g *Guard) Listener(ln net.Listener) net.Listener { return &listener{ln, g} }

type listener struct {
	net.Listener
	g *Guard
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.g.Conn(c), nil
}

// Conn guards c. The result keeps c's ReadFrom (sendfile) and CloseWrite.
func (g *Guard) Conn(c net.Conn) *Conn {
	return &Conn{Conn: c, g: g, s: scanner{lim: &g.lim, first: true}}
}

// TLSConn guards an HTTP/1.1 connection over TLS whose handshake is done.
// The result reports tc's ConnectionState, so net/http sets Request.TLS.
func (g *Guard) TLSConn(tc *tls.Conn) net.Conn {
	return &tlsConn{Conn: g.Conn(tc), tc: tc}
}

type tlsConn struct {
	*Conn
	tc *tls.Conn
}

// ConnectionState is what net/http asks a non-*tls.Conn connection for to
// set Request.TLS.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// NetConn returns the TLS connection.
func (c *tlsConn) NetConn() net.Conn { return c.tc }

// Guarded returns the Conn that reads the connection's requests, for a
// server that reads heads itself.
func (c *tlsConn) Guarded() *Conn { return c.Conn }

type connKey struct{}

// ConnContext is the http.Server ConnContext hook that lets Handler find
// the Conn a request arrived on.
func (g *Guard) ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch gc := c.(type) {
	case *Conn:
		return context.WithValue(ctx, connKey{}, gc)
	case *tlsConn:
		return context.WithValue(ctx, connKey{}, gc.Conn)
	}
	return ctx
}

// rejectedTarget is the request target of the synthetic request a Conn
// passes on in place of a refused head. A client may send it too: it is
// answered as refused only on a connection the Conn refused.
const rejectedTarget = "/.outpost/rejected"

// RejectedTarget is the request target of the synthetic request: a server
// reading heads from a Conn itself passes a request for it to Handler.
const RejectedTarget = rejectedTarget

// synthetic is the request net/http reads in place of a refused head.
var synthetic = []byte("GET " + rejectedTarget + " HTTP/1.1\r\nHost: rejected.invalid\r\nConnection: close\r\n\r\n")

// Handler answers the requests the Guard refused, with the status for the
// fault and "Connection: close", and passes every other request to next.
// The server must use ConnContext. On the hit path it costs one string
// comparison.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RequestURI == rejectedTarget {
			if c, ok := r.Context().Value(connKey{}).(*Conn); ok {
				if f := fault(c.rejected.Load()); f != faultNone {
					writeRefusal(w, f)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeRefusal(w http.ResponseWriter, f fault) {
	st := faults[f].status
	body := strconv.Itoa(st) + " " + http.StatusText(st) + ": " + faults[f].text + "\n"
	h := w.Header()
	h["Connection"] = []string{"close"}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(st)
	w.Write([]byte(body))
}

// ErrMalformedBody is the read error a Conn returns when a request body's
// chunked framing turns out malformed after its handler started.
var ErrMalformedBody = errors.New("httpguard: malformed chunked request body")
