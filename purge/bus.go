package purge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The defaults of BusConfig.
const (
	defaultStream  = "OUTPOST_PURGE"
	defaultSubject = "outpost.purge"
)

// BusConfig configures a Bus. URL, Node and Index are required.
type BusConfig struct {
	// URL is the NATS server, such as nats://nats-1:4222; several,
	// comma-separated, for a cluster. It may carry credentials
	// (nats://user:password@nats-1:4222), which the Bus never logs.
	URL string
	// Stream is the JetStream stream that holds the fleet's purges. Zero
	// means OUTPOST_PURGE. The Bus creates it when it is missing (with
	// MaxAge, MaxMsgs, MaxBytes and Replicas) and uses an existing one as
	// it is configured. Give the stream to purges alone: the Bus reads a
	// gap in its sequence numbers as purges lost (see Bus).
	Stream string
	// Subject is the subject purges are published on; the stream must
	// capture it. Zero means outpost.purge.
	Subject string
	// Node is the node's name in the fleet, which names its durable
	// consumer: the stream's record of what the node has applied, kept
	// across restarts. It must be unique in the fleet: nodes sharing a name
	// share a consumer, and each receives only some of the purges. A
	// character a consumer name cannot hold (. * > space / \ and the like)
	// is replaced, and a hash of Node appended, so distinct names stay
	// distinct.
	Node string
	// Index records the purges issued on this node and applies the
	// fleet's. The Bus does not close it; close the Bus first.
	Index *Index
	// PublishTimeout bounds the wait for the stream to acknowledge a
	// purge, and each call to the JetStream API. Zero means 5 seconds.
	PublishTimeout time.Duration
	// ConnectTimeout bounds one attempt to connect to a NATS server. Zero
	// means 5 seconds.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between attempts to reach NATS after the
	// connection is lost, or could not be made at start. Zero means 2
	// seconds.
	ReconnectWait time.Duration
	// RetryInterval is the pause before the Bus publishes queued purges
	// again after a failure (it also tries as soon as the connection comes
	// back), sets up its consumer again after a failure, or applies again
	// a purge the Index failed to record. Zero means 5 seconds.
	RetryInterval time.Duration
	// MaxPending bounds the purges queued in memory for publishing while
	// the bus is unreachable; beyond it a purge is applied here only. Zero
	// means 10000.
	MaxPending int
	// MaxAge, MaxMsgs and MaxBytes are the limits of the stream the Bus
	// creates when it is missing: the oldest purges are dropped beyond
	// them. Zero means 7 days, 1,000,000 messages and 1 GiB. A node that
	// comes back after the purges it missed were dropped cannot replay
	// them (see Bus).
	MaxAge   time.Duration
	MaxMsgs  int64
	MaxBytes int64
	// Replicas is the number of copies of the stream the Bus creates,
	// across a NATS cluster. Zero means 1.
	Replicas int
	// Options are applied to the NATS connection after the Bus's own: for
	// credentials (nats.UserCredentials, nats.Token) and TLS (nats.RootCAs,
	// nats.ClientCert). They must not replace the connection's event
	// handlers or its reconnection settings, which the Bus relies on.
	Options []nats.Option
	// Logger receives the bus's changes of state: connected, disconnected,
	// caught up, publishing failing and recovered, records refused. Nil
	// means nothing is logged.
	Logger *slog.Logger
	// Registerer receives the bus's metrics:
	// outpost_purge_bus_published_total,
	// outpost_purge_bus_publish_errors_total, outpost_purge_bus_pending,
	// outpost_purge_bus_dropped_total,
	// outpost_purge_bus_applied_total{result} (applied, duplicate,
	// invalid), outpost_purge_bus_connected and outpost_purge_bus_ready.
	// Nil means none are registered.
	Registerer prometheus.Registerer
}

// Bus carries purges between the nodes of a fleet over a NATS JetStream
// stream (DESIGN.md, "Purges across a fleet"). It is a Purger: a purge
// issued here is recorded by the Index first, so it is in force and
// durable on this node before anything is sent, then published as its
// Record (JSON) and acknowledged by the stream. Every node, this one
// included, consumes the stream through a durable consumer of its own and
// applies each Record with Index.Apply, which ignores one already held: a
// node's own purges come back as no-ops. Bans carry their issue time, so
// the order in which nodes, or tiers, apply purges does not change what
// they ban.
//
// When the bus is down, purges still work here: one that cannot be
// published is queued in memory (MaxPending) and published when the bus
// comes back; Purge reports it with a *PublishError. Queued purges not
// published when the Bus is closed are lost to the fleet, and Close says
// so. Meanwhile the fleet's purges wait in the stream for this node.
//
// Ready is closed once the node has applied every purge the stream held
// for it at start: what it missed while down. Purges the stream dropped
// (its limits) before this node applied them cannot be replayed; the Bus
// then bans everything stored before the oldest purge the stream still
// holds, which covers whatever they banned.
//
// A Bus is safe for concurrent use. Create it with NewBus; it owns two
// goroutines and a NATS connection until Close.
type Bus struct {
	cfg      BusConfig
	ix       *Index
	nc       *nats.Conn
	js       jetstream.JetStream
	consumer string // durable consumer name, from Node
	log      *slog.Logger
	met      *busMetrics
	started  time.Time

	ready     chan struct{} // closed once caught up
	readyOnce sync.Once

	// Wake-ups, one buffered: the connection came back, or the stream
	// exists.
	kickPublish chan struct{}
	kickConsume chan struct{}

	mu       sync.Mutex
	outbox   []Record // purges to publish again, oldest first
	closed   bool
	inflight sync.WaitGroup // Purge calls under way
	stopping atomic.Bool    // Close has begun: a disconnection is expected

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Purger = (*Bus)(nil)

// NewBus returns a Bus configured by cfg, connected or connecting to NATS.
// It tries each server once (for up to ConnectTimeout) and does not wait
// for more: with none reachable, it returns a Bus that keeps trying every
// ReconnectWait, queues what Purge publishes, and is not Ready. It fails
// on a configuration error, naming the field, or a URL it cannot parse.
func NewBus(cfg BusConfig) (*Bus, error) {
	cfg.Stream = cmp.Or(cfg.Stream, defaultStream)
	cfg.Subject = cmp.Or(cfg.Subject, defaultSubject)
	cfg.PublishTimeout = cmp.Or(cfg.PublishTimeout, 5*time.Second)
	cfg.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, 5*time.Second)
	cfg.ReconnectWait = cmp.Or(cfg.ReconnectWait, 2*time.Second)
	cfg.RetryInterval = cmp.Or(cfg.RetryInterval, 5*time.Second)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, 10000)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, 7*24*time.Hour)
	cfg.MaxMsgs = cmp.Or(cfg.MaxMsgs, 1_000_000)
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, 1<<30)
	cfg.Replicas = cmp.Or(cfg.Replicas, 1)
	if err := cfg.check(); err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:         cfg,
		ix:          cfg.Index,
		consumer:    consumerName(cfg.Node),
		log:         cfg.Logger,
		started:     time.Now(),
		ready:       make(chan struct{}),
		kickPublish: make(chan struct{}, 1),
		kickConsume: make(chan struct{}, 1),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("stream", cfg.Stream, "consumer", b.consumer)
	b.met = newBusMetrics(b.pending, b.isReady)
	opts := []nats.Option{
		nats.Name("outpost " + cfg.Node),
		nats.Timeout(cfg.ConnectTimeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		// No buffering while disconnected: a purge fails to publish at
		// once, and is queued here, where it is counted and reported.
		nats.ReconnectBufSize(-1),
		// Notice a silently dead server within a minute, not the default
		// six.
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(b.connected),
		nats.ReconnectHandler(b.connected),
		nats.DisconnectErrHandler(b.disconnected),
		nats.ErrorHandler(b.asyncError),
	}
	nc, err := nats.Connect(cfg.URL, append(opts, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("purge: BusConfig.URL: %w", err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("purge: bus: %w", err)
	}
	if cfg.Registerer != nil {
		if err := b.met.register(cfg.Registerer); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if !nc.IsConnected() {
		b.log.Warn("purge bus: cannot reach NATS; retrying, and not ready until caught up with the fleet's purges", "every", cfg.ReconnectWait)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Go(func() { b.consume(ctx) })
	b.wg.Go(func() { b.republish(ctx) })
	return b, nil
}

// check validates a BusConfig whose defaults are filled in.
func (cfg *BusConfig) check() error {
	switch {
	case cfg.URL == "":
		return errors.New("purge: BusConfig.URL is empty")
	case cfg.Node == "":
		return errors.New("purge: BusConfig.Node is empty")
	case cfg.Index == nil:
		return errors.New("purge: BusConfig.Index is nil")
	case cfg.Stream == "" || len(cfg.Stream) > 255 || strings.ContainsAny(cfg.Stream, ".*>/\\ \t\r\n"):
		return fmt.Errorf("purge: BusConfig.Stream %q is not a valid stream name", cfg.Stream)
	case !literalSubject(cfg.Subject):
		return fmt.Errorf("purge: BusConfig.Subject %q is not a subject without wildcards", cfg.Subject)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"PublishTimeout", cfg.PublishTimeout}, {"ConnectTimeout", cfg.ConnectTimeout},
		{"ReconnectWait", cfg.ReconnectWait}, {"RetryInterval", cfg.RetryInterval}, {"MaxAge", cfg.MaxAge},
	} {
		if d.v < 0 {
			return fmt.Errorf("purge: BusConfig.%s %v is negative", d.field, d.v)
		}
	}
	for _, n := range []struct {
		field string
		v     int64
	}{
		{"MaxPending", int64(cfg.MaxPending)}, {"MaxMsgs", cfg.MaxMsgs},
		{"MaxBytes", cfg.MaxBytes}, {"Replicas", int64(cfg.Replicas)},
	} {
		if n.v < 0 {
			return fmt.Errorf("purge: BusConfig.%s %d is negative", n.field, n.v)
		}
	}
	return nil
}

// literalSubject reports whether s is a NATS subject one can publish to:
// dot-separated non-empty tokens, without wildcards or white space.
func literalSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, "*> \t\r\n") {
		return false
	}
	return !slices.Contains(strings.Split(s, "."), "")
}

// consumerName returns node as a durable consumer name: node itself when
// every byte is a letter, digit, - or _ and it is at most 64 bytes long;
// otherwise with the other bytes replaced by _, cut to 64 bytes, and a
// hash of node appended, so that distinct nodes keep distinct names.
func consumerName(node string) string {
	const maxLen = 64
	b := []byte(node)
	changed := len(b) > maxLen
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
			changed = true
		}
	}
	if !changed {
		return node
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x", b[:min(len(b), maxLen)], h.Sum32())
}

// Ready returns a channel closed once the node has applied every purge
// its consumer had not acknowledged when the Bus started: what the node
// missed while it was down (all the stream holds, for a new node). It
// stays open while NATS is unreachable. Once closed it stays closed;
// the connection's later state is in the logs and metrics.
func (b *Bus) Ready() <-chan struct{} { return b.ready }

// isReady reports whether Ready is closed.
func (b *Bus) isReady() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}

// markReady closes Ready, once.
func (b *Bus) markReady() {
	b.readyOnce.Do(func() {
		close(b.ready)
		b.log.Info("purge bus: caught up with the fleet's purges", "after", time.Since(b.started).Round(time.Millisecond))
	})
}

// Close stops the Bus: Purge fails with ErrClosed from now on, purges
// under way finish, the consumer stops, and the purges still queued get
// one last try, bounded by PublishTimeout, before the connection is
// closed. It returns an error naming the purges that never reached the
// fleet. It does not close the Index. Calling Close again does nothing.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.inflight.Wait()
	b.cancel()
	b.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	var err error
	if b.nc.IsConnected() {
		_, err = b.flush(ctx)
	}
	b.stopping.Store(true)
	b.nc.Close()

	b.mu.Lock()
	lost := b.outbox
	b.outbox = nil
	b.mu.Unlock()
	if len(lost) == 0 {
		return nil
	}
	b.met.dropped.Add(float64(len(lost)))
	ids := make([]string, len(lost))
	for i, r := range lost {
		ids[i] = r.ID
	}
	if err == nil {
		err = errNotConnected
	}
	return fmt.Errorf("purge: bus: %d purges applied here never reached the fleet (%s): %w", len(lost), strings.Join(ids, ", "), err)
}

// connected handles the connection's first connect and reconnects.
func (b *Bus) connected(nc *nats.Conn) {
	b.met.connected.Set(1)
	b.log.Info("purge bus: connected to NATS", "server", nc.ConnectedUrlRedacted())
	kick(b.kickPublish)
	kick(b.kickConsume)
}

// disconnected handles the loss of the connection.
func (b *Bus) disconnected(_ *nats.Conn, err error) {
	b.met.connected.Set(0)
	if b.stopping.Load() {
		return
	}
	b.log.Warn("purge bus: disconnected from NATS; purges are applied here only, and the fleet's wait, until it reconnects", "err", err)
}

// asyncError handles errors NATS reports outside any call.
func (b *Bus) asyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	b.log.Warn("purge bus: NATS error", "err", err)
}

// kick wakes the goroutine waiting on c, if it is not awake already.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// errNotConnected reports a publish attempted while NATS is unreachable.
var errNotConnected = errors.New("not connected to NATS")
