package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// HTTP/3 (RFC 9114) on the public listener's port, over UDP, when TLS is
// configured and http3 is not false: the same handler (so the same edge,
// cache, access log and status counters) and the same certificates. HTTPS
// responses advertise it with Alt-Svc (RFC 7838), so browsers move to it.
// 0-RTT is refused, as on TCP: no request can be replayed.

// h3 is the node's HTTP/3 server and its UDP socket.
type h3 struct {
	srv    *http3.Server
	conn   net.PacketConn
	altSvc string // the Alt-Svc field HTTPS responses carry
	done   chan struct{}
}

// altSvcMaxAge is how long a client may remember that HTTP/3 is offered.
const altSvcMaxAge = 24 * time.Hour

// setupHTTP3 prepares the HTTP/3 server; bindHTTP3 binds it once the TCP
// port is known.
func (n *node) setupHTTP3() error {
	n.ops.h3 = &h3{
		srv: &http3.Server{
			Handler: n.public.Handler,
			// A copy made now, keeping GetCertificate: the server clones
			// its config when it starts serving, while net/http's Serve
			// writes to n.public's as it sets up HTTP/2 (a data race).
			TLSConfig:      n.public.TLSConfig.Clone(),
			QUICConfig:     &quic.Config{Allow0RTT: false, MaxIdleTimeout: n.public.IdleTimeout},
			MaxHeaderBytes: n.public.MaxHeaderBytes,
			IdleTimeout:    n.public.IdleTimeout,
			Logger:         n.log,
		},
		done: make(chan struct{}),
	}
	return nil
}

// bindHTTP3 binds the UDP socket on the public listener's address and port.
func (n *node) bindHTTP3() error {
	h := n.ops.h3
	if h == nil {
		return nil
	}
	addr := n.publicLn.Addr().(*net.TCPAddr)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP, Port: addr.Port, Zone: addr.Zone})
	if err != nil {
		return fmt.Errorf("listen: http3: %w (set http3: false to serve without it)", err)
	}
	h.conn = conn
	n.closers = append(n.closers, conn.Close) // after shutdown, or when run never started
	h.altSvc = `h3=":` + strconv.Itoa(addr.Port) + `"; ma=` + strconv.Itoa(int(altSvcMaxAge/time.Second))
	return nil
}

// serve runs the HTTP/3 server until shutdown; a failure is logged, the
// TCP listener goes on.
func (h *h3) serve(n *node) {
	defer close(h.done)
	if err := h.srv.Serve(h.conn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
		n.log.Error("http3: serve", "err", err)
	}
}

// shutdown stops the HTTP/3 server gracefully (GOAWAY, in-flight requests
// finish until ctx is done); the node's closers close the socket.
func (h *h3) shutdown(ctx context.Context, started bool) {
	h.srv.Shutdown(ctx) // past ctx, it closes the connections left
	if started {
		<-h.done
	}
}
