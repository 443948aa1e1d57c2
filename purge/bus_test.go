package purge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// natsServer is an embedded NATS server with JetStream on 127.0.0.1, which
// a test can stop and start again on the same port and store, as an
// operator restarts one.
type natsServer struct {
	t    *testing.T
	opts server.Options
	srv  *server.Server
}

// startNATS starts a server on a free port, or on port when it is not 0,
// with opts' other fields as configure sets them.
func startNATS(t *testing.T, port int, configure ...func(*server.Options)) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      cmp.Or(port, -1),
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	for _, f := range configure {
		f(&ns.opts)
	}
	ns.start()
	ns.opts.Port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	opts := ns.opts
	srv, err := server.NewServer(&opts)
	require.NoError(ns.t, err)
	srv.Start()
	require.True(ns.t, srv.ReadyForConnections(10*time.Second), "NATS server did not start")
	ns.srv = srv
}

func (ns *natsServer) stop() {
	if ns.srv == nil {
		return
	}
	ns.srv.Shutdown()
	ns.srv.WaitForShutdown()
	ns.srv = nil
}

func (ns *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ns.opts.Port) }

// freePort returns a port nothing listens on, for a server started later.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// busNode is one node of a test fleet: an Index over its own memory tier,
// and a Bus, with its metrics in reg.
type busNode struct {
	bus  *Bus
	ix   *Index
	tier *storage.Memory
	reg  *prometheus.Registry
}

// newBusNode starts a node named name on the bus at url. ixCfg and cfg
// give the Index's and the Bus's settings beyond the test's defaults; a
// nil ixCfg.Tier means a fresh memory tier.
func newBusNode(t *testing.T, url, name string, ixCfg Config, cfg BusConfig) *busNode {
	t.Helper()
	if ixCfg.Tier == nil {
		ixCfg.Tier = newMemory(t)
	}
	n := &busNode{tier: ixCfg.Tier.(*storage.Memory), reg: prometheus.NewRegistry()}
	n.ix = newIndex(t, nil, ixCfg)
	cfg.URL, cfg.Node, cfg.Index, cfg.Registerer = url, name, n.ix, n.reg
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", name)
	cfg.PublishTimeout = cmp.Or(cfg.PublishTimeout, 2*time.Second)
	cfg.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, time.Second)
	cfg.ReconnectWait = cmp.Or(cfg.ReconnectWait, 20*time.Millisecond)
	cfg.RetryInterval = cmp.Or(cfg.RetryInterval, 50*time.Millisecond)
	b, err := NewBus(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() }) // before the Index's: cleanups run last first
	n.bus = b
	return n
}

// metric returns one sample of the node's metrics, by gather's name.
func (n *busNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	return gather(t, n.reg)[name]
}

// waitReady waits for b to catch up.
func waitReady(t *testing.T, b *Bus) {
	t.Helper()
	select {
	case <-b.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the bus never became ready")
	}
}

// isReady reports whether b's Ready is closed, without waiting.
func isReady(b *Bus) bool {
	select {
	case <-b.Ready():
		return true
	default:
		return false
	}
}

// eventually waits for cond, which watches another node or a background
// retry: there is no event to wait on across nodes.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventuallyf(t, cond, 20*time.Second, 5*time.Millisecond, msg, args...)
}

// cached is an object stored an hour ago.
func cached(url string) *storage.Meta {
	return &storage.Meta{Key: url, URL: url, ResponseTime: time.Now().Add(-time.Hour)}
}

func banned(ix *Index, m *storage.Meta) bool {
	_, _, b := ix.Check(m)
	return b
}

func TestBusPurgeReachesEveryNode(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	b := newBusNode(t, ns.url(), "shield.b", Config{}, BusConfig{})
	waitReady(t, a.bus)
	waitReady(t, b.bus)
	obj := cached("http://a.test/x.png")
	store(t, b.tier, *obj)

	rec, err := a.bus.Purge(context.Background(), Request{URLs: []string{"http://A.test/x.png"}, Soft: true})
	require.NoError(t, err)
	assert.True(t, banned(a.ix, obj), "the purge is in force on the issuing node when Purge returns")

	eventually(t, func() bool { return banned(b.ix, obj) }, "node b never applied purge %s", rec.ID)
	at, soft, _ := b.ix.Check(obj)
	assert.True(t, soft, "a soft purge stays soft across the fleet")
	assert.True(t, rec.Time.Equal(at), "the ban keeps the time the purge was issued at: %v, want %v", at, rec.Time)
	assert.Equal(t, rec.ID, b.ix.Recent(1)[0].ID, "the purge keeps its ID across the fleet")
	fresh := *obj
	fresh.ResponseTime = time.Now()
	assert.False(t, banned(b.ix, &fresh), "a copy fetched after the purge is not banned")
	assert.Equal(t, 1.0, a.metric(t, "outpost_purge_bus_published_total"))
	assert.Equal(t, 1.0, b.metric(t, "outpost_purge_bus_applied_total{applied}"))
	assert.Equal(t, 1.0, b.metric(t, "outpost_purge_bus_connected"))
	assert.Equal(t, 1.0, b.metric(t, "outpost_purge_bus_ready"))
}

func TestBusOwnPurgeComesBackAsNoop(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	waitReady(t, a.bus)
	rec, err := a.bus.Purge(context.Background(), Request{Tags: []string{"t"}, Hosts: []string{"a.test"}})
	require.NoError(t, err)

	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_applied_total{duplicate}") == 1 },
		"the node's own purge %s never came back", rec.ID)
	assert.Equal(t, 0.0, a.metric(t, "outpost_purge_bus_applied_total{applied}"))
	recent := a.ix.Recent(10)
	require.Len(t, recent, 1, "the purge is held once")
	assert.Equal(t, rec.ID, recent[0].ID)
	assert.Equal(t, 2, a.ix.Len())
}

func TestBusReplaysMissedPurgesBeforeReady(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	waitReady(t, a.bus)

	// Node b runs, applies a first purge, and goes down.
	dir, tier := t.TempDir(), newMemory(t)
	b := newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, BusConfig{})
	waitReady(t, b.bus)
	first := cached("http://a.test/first")
	_, err := a.bus.Purge(context.Background(), Request{URLs: []string{first.URL}})
	require.NoError(t, err)
	eventually(t, func() bool { return banned(b.ix, first) }, "node b never applied the first purge")
	require.NoError(t, b.bus.Close())
	require.NoError(t, b.ix.Close())

	// While it is down, the fleet purges more.
	var missed []*storage.Meta
	for i := range 20 {
		m := cached(fmt.Sprintf("http://a.test/missed-%d", i))
		missed = append(missed, m)
		_, err := a.bus.Purge(context.Background(), Request{URLs: []string{m.URL}})
		require.NoError(t, err)
	}

	// Back up, over the same tier and bans log, and a new node beside it:
	// once ready, each holds every purge.
	b = newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, BusConfig{})
	c := newBusNode(t, ns.url(), "edge-c", Config{}, BusConfig{})
	for _, n := range []*busNode{b, c} {
		waitReady(t, n.bus)
		for _, m := range append([]*storage.Meta{first}, missed...) {
			assert.True(t, banned(n.ix, m), "%s ready without the purge of %s", n.bus.cfg.Node, m.URL)
		}
	}
	assert.Equal(t, 20.0, b.metric(t, "outpost_purge_bus_applied_total{applied}"),
		"the restarted node receives what it missed, not what it had applied")
	assert.Equal(t, 21.0, c.metric(t, "outpost_purge_bus_applied_total{applied}"), "a new node receives everything")
}

// A purge delivered to a node's consumer just as the node stopped (to the
// pull request it left behind) stayed unacknowledged, and the restarted
// node was not ready until the stream delivered it again, ackWait later.
func TestBusRestartDoesNotWaitForUnacknowledgedPurges(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	waitReady(t, a.bus)
	dir, tier := t.TempDir(), newMemory(t)
	b := newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, BusConfig{})
	waitReady(t, b.bus)
	require.NoError(t, b.bus.Close())
	require.NoError(t, b.ix.Close())
	x := cached("http://a.test/x")
	_, err := a.bus.Purge(context.Background(), Request{URLs: []string{x.URL}})
	require.NoError(t, err)

	ctx := context.Background()
	nc, err := nats.Connect(ns.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(ctx, defaultStream, "edge-b")
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for range batch.Messages() { // delivered, never acknowledged
	}
	require.NoError(t, batch.Error())
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, info.NumAckPending)
	nc.Close()

	b = newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, BusConfig{})
	select {
	case <-b.bus.Ready():
	case <-time.After(ackWait / 3):
		t.Fatalf("not ready %v after start: waiting for the redelivery", ackWait/3)
	}
	assert.True(t, banned(b.ix, x), "ready without the unacknowledged purge")
}

func TestBusQueuesPurgesWhileNATSIsDown(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	b := newBusNode(t, ns.url(), "edge-b", Config{}, BusConfig{})
	waitReady(t, a.bus)
	waitReady(t, b.bus)
	ns.stop()
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_connected") == 0 }, "node a never saw NATS go")

	x := cached("http://a.test/x")
	rec, err := a.bus.Purge(context.Background(), Request{URLs: []string{x.URL}})
	pe, ok := errors.AsType[*PublishError](err)
	require.True(t, ok, "Purge with NATS down = %v, want a *PublishError", err)
	assert.True(t, pe.Queued)
	assert.Equal(t, rec.ID, pe.ID)
	assert.True(t, banned(a.ix, x), "the purge is in force here while the bus is down")

	// The admin API answers 200, and says the fleet does not have it yet.
	h, err := NewHandler(HandlerConfig{Purger: a.bus})
	require.NoError(t, err)
	admin := httptest.NewServer(h)
	t.Cleanup(admin.Close)
	y := cached("http://a.test/y")
	status, _, out := post(t, admin.URL, `{"urls": ["`+y.URL+`"]}`)
	assert.Equal(t, http.StatusOK, status)
	assert.NotEmpty(t, out["id"])
	assert.Contains(t, out["warning"], "in force on this node only")
	assert.Equal(t, 2.0, a.metric(t, "outpost_purge_bus_pending"))
	assert.Equal(t, 2.0, a.metric(t, "outpost_purge_bus_publish_errors_total"))
	assert.False(t, banned(b.ix, x))

	ns.start()
	eventually(t, func() bool { return banned(b.ix, x) && banned(b.ix, y) }, "the queued purges never reached node b")
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_pending") == 0 }, "the queue never emptied")
	assert.Equal(t, 2.0, a.metric(t, "outpost_purge_bus_published_total"))
	assert.Equal(t, 0.0, a.metric(t, "outpost_purge_bus_dropped_total"))
}

func TestBusRefusedPurgeDoesNotHoldUpTheQueue(t *testing.T) {
	ns := startNATS(t, 0)
	// An operator's stream, whose messages are smaller than a large purge.
	nc, err := nats.Connect(ns.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: defaultStream, Subjects: []string{defaultSubject}, Storage: jetstream.FileStorage, MaxMsgSize: 4096,
	})
	require.NoError(t, err)
	nc.Close()
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	b := newBusNode(t, ns.url(), "edge-b", Config{}, BusConfig{})
	waitReady(t, a.bus)
	waitReady(t, b.bus)

	ns.stop()
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_connected") == 0 }, "node a never saw NATS go")
	var large []string
	for i := range 200 {
		large = append(large, fmt.Sprintf("http://a.test/assets/file-%04d.png", i))
	}
	_, err = a.bus.Purge(context.Background(), Request{URLs: large})
	require.ErrorAs(t, err, new(*PublishError))
	small := cached("http://a.test/small")
	_, err = a.bus.Purge(context.Background(), Request{URLs: []string{small.URL}})
	require.ErrorAs(t, err, new(*PublishError))

	ns.start()
	eventually(t, func() bool { return banned(b.ix, small) }, "the purge queued behind a refused one never reached node b")
	// The outbox lets a purge go only once NATS acknowledged it, which may
	// come after node b has it: wait for the count to settle.
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_pending") == 1 }, "the queue never settled at the refused purge")
	assert.Equal(t, 1.0, a.metric(t, "outpost_purge_bus_pending"), "the refused purge stays queued")
	assert.False(t, banned(b.ix, cached(large[0])))
}

func TestBusIsNotReadyUntilNATSIsReachable(t *testing.T) {
	port := freePort(t)
	a := newBusNode(t, fmt.Sprintf("nats://127.0.0.1:%d", port), "edge-a", Config{}, BusConfig{})
	assert.False(t, isReady(a.bus), "ready without a bus to replay")
	x := cached("http://a.test/x")
	_, err := a.bus.Purge(context.Background(), Request{URLs: []string{x.URL}})
	require.ErrorAs(t, err, new(*PublishError))
	assert.True(t, banned(a.ix, x))

	startNATS(t, port) // creates no stream: the bus does
	waitReady(t, a.bus)
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_applied_total{duplicate}") == 1 },
		"the queued purge was never published and received back")
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_pending") == 0 }, "the queue never emptied")
}

func TestBusBansWhatDroppedPurgesBanned(t *testing.T) {
	ns := startNATS(t, 0)
	keepTwo := BusConfig{MaxMsgs: 2}
	a := newBusNode(t, ns.url(), "edge-a", Config{}, keepTwo)
	waitReady(t, a.bus)
	dir, tier := t.TempDir(), newMemory(t)
	b := newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, keepTwo)
	waitReady(t, b.bus)
	require.NoError(t, b.bus.Close())
	require.NoError(t, b.ix.Close())

	for _, u := range []string{"http://a.test/1", "http://a.test/2", "http://a.test/3"} {
		_, err := a.bus.Purge(context.Background(), Request{URLs: []string{u}})
		require.NoError(t, err)
	}
	after := time.Now()

	b = newBusNode(t, ns.url(), "edge-b", Config{Tier: tier, Dir: dir}, keepTwo)
	waitReady(t, b.bus)
	assert.True(t, banned(b.ix, cached("http://a.test/1")), "the dropped purge's object is banned")
	assert.True(t, banned(b.ix, cached("http://other.test/")), "so is anything stored before the purges held")
	assert.False(t, banned(b.ix, &storage.Meta{URL: "http://other.test/", ResponseTime: after}),
		"what was stored after the purges is not")
	assert.True(t, banned(b.ix, cached("http://a.test/3")))
	assert.Equal(t, 2.0, b.metric(t, "outpost_purge_bus_applied_total{applied}"))
}

func TestBusSplitsLargePurges(t *testing.T) {
	ns := startNATS(t, 0, func(o *server.Options) { o.MaxPayload = 4096 })
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	b := newBusNode(t, ns.url(), "edge-b", Config{}, BusConfig{})
	waitReady(t, a.bus)
	waitReady(t, b.bus)
	var urls []string
	for i := range 300 {
		urls = append(urls, fmt.Sprintf("http://a.test/assets/file-%04d.png", i))
	}
	_, err := a.bus.Purge(context.Background(), Request{URLs: urls})
	require.NoError(t, err)
	eventually(t, func() bool {
		for _, u := range urls {
			if !banned(b.ix, cached(u)) {
				return false
			}
		}
		return true
	}, "node b never applied every part of the purge")
	assert.Greater(t, b.metric(t, "outpost_purge_bus_applied_total{applied}"), 1.0, "the purge came in parts")
}

func TestEncodeRecordSplitsWithinLimit(t *testing.T) {
	rec := Record{ID: "R", Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Soft: true}
	for i := range 100 {
		rec.Bans = append(rec.Bans, Ban{Kind: KindURL, Value: fmt.Sprintf("http://a.test/%d?<&>", i)})
	}
	tests := []struct {
		name      string
		giveLimit int
		wantParts int
	}{
		{"fits", 1 << 20, 1},
		{"split", 1000, 0}, // as many as it takes
		{"one ban each", 140, len(rec.Bans)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := encodeRecord(rec, tt.giveLimit)
			require.NoError(t, err)
			if tt.wantParts != 0 {
				assert.Len(t, msgs, tt.wantParts)
			}
			var bans []Ban
			for i, m := range msgs {
				assert.LessOrEqual(t, len(m.data), tt.giveLimit, "part %d", i)
				var part Record
				require.NoError(t, json.Unmarshal(m.data, &part))
				require.NoError(t, part.check())
				assert.Equal(t, m.id, part.ID)
				assert.True(t, part.Time.Equal(rec.Time) && part.Soft, "part %d keeps the time and mode", i)
				bans = append(bans, part.Bans...)
			}
			assert.Equal(t, rec.Bans, bans, "the parts hold every ban once, in order")
			again, err := encodeRecord(rec, tt.giveLimit)
			require.NoError(t, err)
			assert.Equal(t, msgs, again, "a retry sends the same messages")
		})
	}
	_, err := encodeRecord(rec, 100)
	assert.ErrorIs(t, err, errUnencodable)
}

func TestBusCloseReportsUnpublishedPurges(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{MaxPending: 1, PublishTimeout: 200 * time.Millisecond})
	waitReady(t, a.bus)
	ns.stop()
	eventually(t, func() bool { return a.metric(t, "outpost_purge_bus_connected") == 0 }, "node a never saw NATS go")

	queued, err := a.bus.Purge(context.Background(), Request{URLs: []string{"http://a.test/1"}})
	pe, ok := errors.AsType[*PublishError](err)
	require.True(t, ok, "first purge: %v", err)
	assert.True(t, pe.Queued)
	refused, err := a.bus.Purge(context.Background(), Request{URLs: []string{"http://a.test/2"}})
	pe, ok = errors.AsType[*PublishError](err)
	require.True(t, ok, "second purge: %v", err)
	assert.False(t, pe.Queued, "the queue holds one purge")
	assert.True(t, banned(a.ix, cached("http://a.test/2")), "a purge the queue refuses is still in force here")

	err = a.bus.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), queued.ID)
	assert.NotContains(t, err.Error(), refused.ID, "reported already")
	assert.Equal(t, 2.0, a.metric(t, "outpost_purge_bus_dropped_total"))
	assert.NoError(t, a.bus.Close(), "closing again")
	_, err = a.bus.Purge(context.Background(), Request{All: true})
	assert.ErrorIs(t, err, ErrClosed)
	assert.Len(t, a.ix.Recent(10), 2, "nothing is recorded after Close")
}

func TestBusRefusesInvalidPurges(t *testing.T) {
	ns := startNATS(t, 0)
	a := newBusNode(t, ns.url(), "edge-a", Config{}, BusConfig{})
	waitReady(t, a.bus)
	_, err := a.bus.Purge(context.Background(), Request{URLs: []string{"/relative"}})
	require.ErrorAs(t, err, new(*ValidationError))
	assert.Equal(t, 0.0, a.metric(t, "outpost_purge_bus_published_total"), "nothing published")
	assert.Equal(t, 0.0, a.metric(t, "outpost_purge_bus_publish_errors_total"))
}

func TestNewBusRefusesBadConfig(t *testing.T) {
	ix := newIndex(t, nil, Config{})
	valid := BusConfig{URL: "nats://127.0.0.1:4222", Node: "edge-a", Index: ix}
	tests := []struct {
		name    string
		give    func(*BusConfig)
		wantErr string
	}{
		{"no url", func(c *BusConfig) { c.URL = "" }, "BusConfig.URL is empty"},
		{"no node", func(c *BusConfig) { c.Node = "" }, "BusConfig.Node is empty"},
		{"no index", func(c *BusConfig) { c.Index = nil }, "BusConfig.Index is nil"},
		{"stream with a dot", func(c *BusConfig) { c.Stream = "OUTPOST.PURGE" }, `BusConfig.Stream "OUTPOST.PURGE"`},
		{"wildcard subject", func(c *BusConfig) { c.Subject = "outpost.*" }, `BusConfig.Subject "outpost.*"`},
		{"empty token", func(c *BusConfig) { c.Subject = "outpost..purge" }, `BusConfig.Subject "outpost..purge"`},
		{"negative timeout", func(c *BusConfig) { c.PublishTimeout = -time.Second }, "BusConfig.PublishTimeout -1s is negative"},
		{"negative queue", func(c *BusConfig) { c.MaxPending = -1 }, "BusConfig.MaxPending -1 is negative"},
		{"bad url", func(c *BusConfig) { c.URL = "nats://[::1" }, "BusConfig.URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.give(&cfg)
			b, err := NewBus(cfg)
			if err == nil {
				b.Close()
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestConsumerName(t *testing.T) {
	tests := []struct {
		give string
		want string // "" means sanitized: a hash appended
	}{
		{"edge-fra-1", "edge-fra-1"},
		{"edge_fra_1", "edge_fra_1"},
		{"edge.fra.1", ""},
		{"edge fra/1", ""},
		{"shield>*", ""},
		{strings.Repeat("a", 65), ""},
	}
	var names []string
	for _, tt := range tests {
		got := consumerName(tt.give)
		names = append(names, got)
		if tt.want != "" {
			assert.Equal(t, tt.want, got, "consumerName(%q)", tt.give)
			continue
		}
		assert.NotContains(t, got, ".", "consumerName(%q)", tt.give)
		assert.False(t, strings.ContainsAny(got, ".*> /\\\t\r\n"), "consumerName(%q) = %q", tt.give, got)
		assert.LessOrEqual(t, len(got), 64+9, "consumerName(%q)", tt.give)
	}
	slices.Sort(names)
	assert.Len(t, slices.Compact(names), len(tests), "distinct nodes keep distinct names")
}
