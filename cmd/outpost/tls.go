package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// resolveTickets validates tls.session_tickets and reads its key file once.
func (s *settings) resolveTickets(st *ticketsConfig) (err error) {
	if s.tickets, err = resolveTickets(st); err == nil && s.tlsCert == nil && (st.KeyFile.V != "" || st.Rotation.V != "" || st.Lifetime.V != "") {
		err = badField("tls.session_tickets", st.Line, "set without a certificate (tls.cert and tls.key, or tls.certificates)")
	}
	return err
}

func resolveTickets(st *ticketsConfig) (ticketSettings, error) {
	var ts ticketSettings
	if st.KeyFile.V == "" {
		if st.Rotation.V != "" || st.Lifetime.V != "" {
			return ts, badField("tls.session_tickets.key_file", st.Line, "missing (rotation and lifetime apply to the keys derived from it; without it each node rotates random keys of its own)")
		}
		return ts, nil
	}
	var err error
	if ts.rotation, err = durationField("tls.session_tickets.rotation", st.Rotation, defaultTicketRotation); err != nil {
		return ts, err
	}
	if ts.rotation < minTicketRotation || ts.rotation%time.Second != 0 {
		return ts, badField("tls.session_tickets.rotation", st.Rotation.Line, "%v: want whole seconds, at least %v", ts.rotation, minTicketRotation)
	}
	if ts.lifetime, err = durationField("tls.session_tickets.lifetime", st.Lifetime, defaultTicketLifetime); err != nil {
		return ts, err
	}
	if ts.lifetime < ts.rotation || ts.lifetime > maxTicketLifetime {
		return ts, badField("tls.session_tickets.lifetime", st.Lifetime.Line, "%v: want at least the rotation (%v) and at most %v", ts.lifetime, ts.rotation, maxTicketLifetime)
	}
	ts.file = st.KeyFile.V
	secrets, err := readTicketSecrets(ts.file)
	if err != nil {
		return ts, badField("tls.session_tickets.key_file", st.KeyFile.Line, "%v", err)
	}
	if n := ticketKeyCount(len(secrets), ts); n > maxTicketKeys {
		return ts, badField("tls.session_tickets.lifetime", st.Lifetime.Line, "%d secrets make %d keys at this rotation and lifetime (at most %d): raise the rotation", len(secrets), n, maxTicketKeys)
	}
	return ts, nil
}

// publicTLS serves the public listener over TLS 1.2 and 1.3 with HTTP/2;
// the certificates are certs.go's.
//
// Session resumption: with a ticket key file, ticketKeys keeps the keys,
// and the config hands itself out per handshake (GetConfigForClient), so
// that HTTP/3, which works on copies of it, gets the keys of the moment
// too; without a file, crypto/tls makes random keys of its own per node and
// rotates them daily. 0-RTT (early data) is never accepted: crypto/tls does
// not implement it on servers, so no request can be replayed.
//
// HTTP/2 is golang.org/x/net/http2's server, tuned in h2Config, reading
// through h2Guard and writing through a coalescer (h2write.go).
type publicTLS struct {
	cfg     *tls.Config
	tickets *ticketKeys // nil: crypto/tls's own keys
}

func newPublicTLS(s *settings, srv *http.Server, log *slog.Logger) (*publicTLS, error) {
	p := &publicTLS{cfg: &tls.Config{
		Certificates: []tls.Certificate{*s.tlsCert},
		MinVersion:   tls.VersionTLS12,
		// Full 16 KiB records from the first byte, as nginx's default
		// ssl_buffer_size: crypto/tls otherwise sends a connection's
		// first 128 KiB in records of one TCP segment, which split a
		// 1 KiB response and its header fields in two records, two
		// writes. The cost: on a lossy path, the first record of a large
		// response decrypts only once all of it has arrived.
		DynamicRecordSizingDisabled: true,
	}}
	if s.tickets.file != "" {
		var err error
		if p.tickets, err = newTicketKeys(p.cfg, s.tickets, log, time.Now); err != nil {
			return nil, badField("tls.session_tickets.key_file", 0, "%v", err)
		}
		p.cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return p.cfg, nil }
	}
	srv.TLSConfig = p.cfg
	srv.HTTP2 = h2Config()
	h2 := &http2.Server{}
	if err := http2.ConfigureServer(srv, h2); err != nil { // ALPN h2 and http/1.1; graceful shutdown
		return nil, fmt.Errorf("http2: %w", err)
	}
	delete(srv.TLSNextProto, "unencrypted_http2") // every connection here is TLS
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		var ctx context.Context // the connection's, which net/http hands over this way
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		g := newH2Guard(c)
		g.wr = newCoalescer(c) // h2write.go
		h2.ServeConn(g, &http2.ServeConnOpts{Context: ctx, Handler: presized(h), BaseConfig: hs})
	}
	return p, nil
}

// h2HandlerStack is the stack an HTTP/2 handler goroutine starts with (see
// presized): what the hit path needs. 16 KiB cost more than it saved: a
// per-P stack cache holds one 16 KiB stack at a time, so every request
// took the global pool's lock to get one (newstack 5.1% of a 1 KiB
// HTTP/2 profile at 16 KiB, 3.4% at 8 KiB, no growth after it).
const h2HandlerStack = 8 << 10

// presized grows the stack of each HTTP/2 handler goroutine once, on
// entry. HTTP/2 runs every request on a new goroutine, whose small
// initial stack the hit path outgrows twice; each growth copies the stack
// and adjusts every frame on it, deep in the path. Growing it here, while
// it holds two frames, costs one small copy.
func presized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		growStack()
		h.ServeHTTP(w, r)
	})
}

// growStack needs a frame of more than half of h2HandlerStack, so
// calling it grows the goroutine's stack to h2HandlerStack.
//
//go:noinline
func growStack() byte {
	var frame [h2HandlerStack - 3<<10]byte
	return touch(frame[:])
}

//go:noinline
func touch(b []byte) byte { return b[len(b)-1] }

// h2Config is the HTTP/2 server's configuration. h2Guard relies on the
// frame and header table sizes.
func h2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReadFrameSize:          h2MaxFrame,
		MaxDecoderHeaderTableSize: h2HeaderTable,
	}
}

// run keeps the ticket keys current until ctx is done. A nil p does nothing.
func (p *publicTLS) run(ctx context.Context) {
	if p != nil && p.tickets != nil {
		p.tickets.Run(ctx)
	}
}
