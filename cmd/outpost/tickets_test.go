package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newSecrets returns n random ticket secrets as key file lines.
func newSecrets(n int) []string {
	var lines []string
	for range n {
		b := make([]byte, 32)
		rand.Read(b)
		lines = append(lines, base64.StdEncoding.EncodeToString(b))
	}
	return lines
}

// ticketFile writes a key file of n new secrets.
func ticketFile(t *testing.T, n int) string {
	return writeFile(t, "tickets.key", "# session ticket secrets\n"+strings.Join(newSecrets(n), "\n")+"\n")
}

// TestTicketsResumeAcrossNodes: nodes sharing a ticket key file resume
// each other's sessions, so a client that DNS moves to another node does
// not pay a full handshake; a node with another file does not.
func TestTicketsResumeAcrossNodes(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := cacheableOrigin(t)
	config := func(tickets string) string {
		return writeFile(t, "outpost.yaml", "tls:\n  certificates: [{cert: "+certFile+", key: "+keyFile+"}]\n"+
			"  session_tickets: {key_file: "+tickets+"}\n")
	}
	shared := ticketFile(t, 1)
	a := startNode(t, "--origin", o.URL, "--config", config(shared))
	b := startNode(t, "--origin", o.URL, "--config", config(shared))
	other := startNode(t, "--origin", o.URL, "--config", config(ticketFile(t, 1)))

	cache := tls.NewLRUClientSessionCache(8) // one client, moving between nodes
	get := func(tn *testNode) *tls.ConnectionState {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", ClientSessionCache: cache},
		}}
		resp, err := c.Get(strings.Replace(tn.url, "http://", "https://", 1) + "/resume")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "object /resume", string(body))
		return resp.TLS
	}
	assert.False(t, get(a).DidResume, "first contact: a full handshake")
	assert.True(t, get(b).DidResume, "another node behind the name resumes")
	assert.True(t, get(a).DidResume)
	assert.False(t, get(other).DidResume, "a node with other secrets cannot")

	// HTTP/3 too: QUIC carries TLS 1.3 with the same tickets.
	h3cache := tls.NewLRUClientSessionCache(8)
	get3 := func(tn *testNode) *tls.ConnectionState {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", ClientSessionCache: h3cache}}
		defer tr.Close() // a new QUIC connection each time
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(strings.Replace(tn.url, "http://", "https://", 1) + "/resume")
		require.NoError(t, err)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		require.Equal(t, "HTTP/3.0", resp.Proto)
		return resp.TLS
	}
	assert.False(t, get3(a).DidResume)
	assert.True(t, get3(b).DidResume, "over HTTP/3, another node resumes too")
}

// ticketProbe makes TLS server configs and a client that keeps the first
// session ticket it gets, to present it again and again.
type ticketProbe struct {
	t      *testing.T
	cert   tls.Certificate
	ticket *firstTicket
}

func newTicketProbe(t *testing.T) *ticketProbe {
	certFile, keyFile, _ := selfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return &ticketProbe{t: t, cert: cert, ticket: &firstTicket{}}
}

// server makes a server config whose ticket keys come from file at the
// time clock tells.
func (p *ticketProbe) server(file string, set ticketSettings, clock func() time.Time, log *slog.Logger) (*tls.Config, *ticketKeys) {
	p.t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{p.cert}, Time: clock}
	set.file = file
	k, err := newTicketKeys(cfg, set, log, clock)
	require.NoError(p.t, err)
	return cfg, k
}

// handshake connects a client to srv over loopback and reports whether it
// resumed the probe's ticket.
func (p *ticketProbe) handshake(srv *tls.Config, clock func() time.Time) bool {
	p.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // net.Pipe is unbuffered: TLS 1.3 would deadlock on it
	require.NoError(p.t, err)
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(p.t, err)
	defer cc.Close()
	sc, err := ln.Accept()
	require.NoError(p.t, err)
	s := tls.Server(sc, srv)
	defer s.Close()
	errc := make(chan error, 1)
	go func() {
		if err := s.Handshake(); err != nil {
			errc <- err
			return
		}
		_, err := s.Write([]byte("x")) // the session ticket goes out first
		errc <- err
	}()
	c := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1", ClientSessionCache: p.ticket, Time: clock})
	require.NoError(p.t, c.Handshake())
	_, err = io.ReadFull(c, make([]byte, 1))
	require.NoError(p.t, err)
	require.NoError(p.t, <-errc)
	return c.ConnectionState().DidResume
}

// firstTicket is a client session cache that keeps the first session it
// is given, so one ticket can be tried at several times.
type firstTicket struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (f *firstTicket) Get(string) (*tls.ClientSessionState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cs, f.cs != nil
}

func (f *firstTicket) Put(_ string, cs *tls.ClientSessionState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cs == nil {
		f.cs = cs
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestTicketKeysRotation: a ticket resumes while the key that issued it
// is within the lifetime, on this node and on a node whose clock is up to
// a rotation behind; after the lifetime it no longer does.
func TestTicketKeysRotation(t *testing.T) {
	file := ticketFile(t, 1)
	set := ticketSettings{rotation: time.Hour, lifetime: 3 * time.Hour}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)}
	behind := func() time.Time { return clock.now().Add(-time.Hour) }
	p := newTicketProbe(t)
	srv, keys := p.server(file, set, clock.now, log)
	lagging, lagKeys := p.server(file, set, behind, log)

	assert.False(t, p.handshake(srv, clock.now), "the first handshake is full and gets the ticket")
	assert.True(t, p.handshake(lagging, behind), "a node an hour behind accepts the next epoch's key")
	for _, step := range []struct {
		after      time.Duration
		wantResume bool
	}{
		{time.Hour, true},
		{time.Hour, true},
		{time.Hour, true},  // 13:30: the ticket's epoch is the oldest one kept
		{time.Hour, false}, // 14:30: its key is gone
	} {
		clock.add(step.after)
		keys.refresh()
		lagKeys.refresh()
		assert.Equal(t, step.wantResume, p.handshake(srv, clock.now), "at %v", clock.now())
	}
}

// TestTicketKeysReload: a changed key file is read again: a new secret put
// first issues the tickets while the old one still resumes; once the old
// secret is removed its tickets no longer resume. A file that stops
// parsing leaves the keys as they were.
func TestTicketKeysReload(t *testing.T) {
	secrets := newSecrets(2)
	file := writeFile(t, "tickets.key", secrets[0]+"\n")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)}
	oldTicket := newTicketProbe(t)
	srv, keys := oldTicket.server(file, ticketSettings{rotation: time.Hour, lifetime: 24 * time.Hour}, clock.now, log)
	require.False(t, oldTicket.handshake(srv, clock.now))

	mtime := time.Now()
	rewrite := func(content string) {
		require.NoError(t, os.WriteFile(file, []byte(content), 0o600))
		mtime = mtime.Add(time.Second) // a new stamp, however coarse the file system's clock
		require.NoError(t, os.Chtimes(file, mtime, mtime))
		keys.refresh()
	}
	rewrite(secrets[1] + "\n" + secrets[0] + "\n")
	assert.True(t, oldTicket.handshake(srv, clock.now), "the old secret still decrypts")
	newTicket := &ticketProbe{t: t, cert: oldTicket.cert, ticket: &firstTicket{}}
	require.False(t, newTicket.handshake(srv, clock.now))

	rewrite("not a key file\n")
	assert.Contains(t, logs.String(), "keeping the keys in use")
	assert.True(t, oldTicket.handshake(srv, clock.now), "a bad file changes nothing")

	rewrite(secrets[1] + "\n")
	assert.True(t, newTicket.handshake(srv, clock.now), "tickets of the new secret resume")
	assert.False(t, oldTicket.handshake(srv, clock.now), "the old secret is gone")
}

// TestTicketKeysRun: Run moves to each rotation's keys when it begins and
// notices a changed file, without anyone calling it.
func TestTicketKeysRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		secrets := newSecrets(2)
		file := writeFile(t, "tickets.key", secrets[0]+"\n")
		cfg := &tls.Config{}
		k, err := newTicketKeys(cfg, ticketSettings{file: file, rotation: time.Hour, lifetime: 2 * time.Hour},
			slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
		require.NoError(t, err)
		state := func() (int64, int) {
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.epoch, len(k.secrets)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); k.Run(ctx) }()

		e0, _ := state()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		e, n := state()
		assert.Equal(t, e0+2, e, "two rotations later")
		assert.Equal(t, 1, n)

		require.NoError(t, os.WriteFile(file, []byte(secrets[1]+"\n"+secrets[0]+"\n"), 0o600))
		time.Sleep(ticketCheckEvery)
		synctest.Wait()
		_, n = state()
		assert.Equal(t, 2, n, "the new file is read within %v", ticketCheckEvery)

		cancel()
		<-done
	})
}
