package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// busProxy is a TCP proxy in front of the NATS server for the nodes whose
// purges a test delays: while paused, what the server sends them (purges
// delivered to their consumers, acknowledgements) waits in the proxy, and
// reaches them, in order, on resume. What they send goes through at once.
type busProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	gate   chan struct{} // closed while deliveries flow
	refuse bool          // connections are closed at once: NATS is unreachable
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// newBusProxy starts a proxy to the NATS server at target (host:port),
// delivering; the test's cleanup stops it.
func newBusProxy(t *testing.T, target string) *busProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &busProxy{ln: ln, target: target, gate: make(chan struct{})}
	close(p.gate)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// url is the NATS URL the delayed nodes are given.
func (p *busProxy) url() string { return "nats://" + p.ln.Addr().String() }

// pause holds back deliveries until resume.
func (p *busProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // paused already
	}
}

// resume lets held deliveries and later ones through.
func (p *busProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// setReachable makes new connections reach NATS (true), or end at once
// (false), as when NATS is down; it leaves established ones alone.
func (p *busProxy) setReachable(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = !ok
}

func (p *busProxy) currentGate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

func (p *busProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() { p.deliver(c, s); c.Close() })
	}
}

// deliver copies from the server to the node, each read waiting at the
// gate.
func (p *busProxy) deliver(node, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			<-p.currentGate()
			if _, werr := node.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops the proxy and its connections and waits for its goroutines.
func (p *busProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.resume() // a delivery waiting at the gate finds its connection closed
	p.wg.Wait()
}

// busFile writes a config file that puts a node on the purge bus at url.
func busFile(t testing.TB, url string) string {
	t.Helper()
	return writeFile(t, "bus.yaml", fmt.Sprintf("purge_bus: { nats: %q, stream: OUTPOST_TEST }\n", url))
}
