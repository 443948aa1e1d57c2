package purge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishError reports a purge recorded on this node, and in force here,
// that the fleet's bus has not acknowledged: the Record returned with it
// is valid. With Queued, the Bus publishes it again in the background
// until the stream acknowledges it or the Bus is closed; without, its
// queue was full and the purge will not reach the other nodes unless it
// is issued again.
type PublishError struct {
	// ID is the purge's Record.ID.
	ID string
	// Queued reports that the Bus will keep trying.
	Queued bool
	// Err is why the publish failed: no connection, no acknowledgement
	// within PublishTimeout, or the stream's refusal.
	Err error
}

// Error implements error.
func (e *PublishError) Error() string {
	if e.Queued {
		return fmt.Sprintf("purge: %s is in force here but not yet on the fleet's bus (queued for retry): %v", e.ID, e.Err)
	}
	return fmt.Sprintf("purge: %s is in force here only: the bus queue is full: %v", e.ID, e.Err)
}

// Unwrap returns Err.
func (e *PublishError) Unwrap() error { return e.Err }

// errUnencodable reports a purge that cannot be put in messages the
// server takes.
var errUnencodable = errors.New("purge does not fit in messages on the bus")

// Purge records req in the Index, which validates it (a refused request
// returns its *ValidationError and records nothing) and makes it durable
// here, then publishes the Record and waits, up to PublishTimeout, for the
// stream to acknowledge it: a nil error means every node will apply it.
// When the publish fails, the purge stands here, and Purge returns the
// Record with a *PublishError saying whether it is queued for the
// background retry. The publish does not end with ctx: a client that
// leaves does not leave the purge unpublished. After Close, Purge returns
// ErrClosed and records nothing.
func (b *Bus) Purge(ctx context.Context, req Request) (Record, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return Record{}, ErrClosed
	}
	b.inflight.Add(1)
	b.mu.Unlock()
	defer b.inflight.Done()

	rec, err := b.ix.Purge(ctx, req)
	if err != nil {
		return Record{}, err
	}
	if !b.nc.IsConnected() {
		b.met.publishErrors.Inc()
		err = errNotConnected
	} else {
		err = b.publish(context.WithoutCancel(ctx), rec)
	}
	if err == nil {
		return rec, nil
	}
	return rec, &PublishError{ID: rec.ID, Queued: b.enqueue(rec), Err: err}
}

// headerNode names the node that issued a purge, for whoever reads the
// stream.
const headerNode = "Outpost-Node"

// publish sends rec, in as many messages as the server's payload limit
// needs, and waits up to PublishTimeout for the stream to acknowledge
// them.
func (b *Bus) publish(ctx context.Context, rec Record) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	msgs, err := encodeRecord(rec, b.messageLimit())
	if err != nil {
		b.met.publishErrors.Inc()
		return err
	}
	for _, m := range msgs {
		msg := nats.NewMsg(b.cfg.Subject)
		msg.Data = m.data
		msg.Header.Set(headerNode, b.cfg.Node)
		// The message ID lets the stream drop a second copy of a purge
		// retried after a lost acknowledgement; Index.Apply ignores one
		// anyway.
		if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.id), jetstream.WithExpectStream(b.cfg.Stream)); err != nil {
			b.met.publishErrors.Inc()
			return fmt.Errorf("publish %s: %w", m.id, err)
		}
	}
	b.met.published.Inc()
	return nil
}

// Bounds on a message on the bus.
const (
	// maxMessageSize bounds a message's payload, well under NATS's default
	// limit (1 MiB) so a purge never needs to be the largest message a
	// server takes.
	maxMessageSize = 256 << 10
	// headerRoom is what the payload leaves to headers, Node's aside.
	headerRoom = 512
)

// messageLimit returns the largest payload the connected server takes,
// headers aside, at most maxMessageSize.
func (b *Bus) messageLimit() int {
	limit := maxMessageSize
	if mp := int(b.nc.MaxPayload()); mp > 0 {
		limit = min(limit, mp-headerRoom-len(b.cfg.Node))
	}
	return limit
}

// message is one message of a Record on the bus.
type message struct {
	id   string
	data []byte
}

// encodeRecord returns rec as the messages the bus carries: its JSON when
// that is at most limit bytes, else parts: Records with rec's time and
// mode, IDs "<rec.ID>/1", "<rec.ID>/2"…, and rec's bans shared between
// them, each part's JSON at most limit bytes. The split depends on rec and
// limit alone, so a retry sends the same parts under the same IDs.
func encodeRecord(rec Record, limit int) ([]message, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", rec.ID, err)
	}
	if len(data) <= limit {
		return []message{{id: rec.ID, data: data}}, nil
	}
	// Every part's JSON is its bans' JSON, one comma between two, plus
	// what a part without bans takes (with a part number this long).
	empty, err := json.Marshal(Record{ID: rec.ID + "/999999", Time: rec.Time, Soft: rec.Soft, Bans: []Ban{}})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", rec.ID, err)
	}
	room := limit - len(empty)
	var msgs []message
	emit := func(bans []Ban) error {
		part := Record{ID: fmt.Sprintf("%s/%d", rec.ID, len(msgs)+1), Time: rec.Time, Soft: rec.Soft, Bans: bans}
		data, err := json.Marshal(part)
		if err != nil {
			return fmt.Errorf("encode %s: %w", part.ID, err)
		}
		msgs = append(msgs, message{id: part.ID, data: data})
		return nil
	}
	start, size := 0, 0
	for i, ban := range rec.Bans {
		bj, err := json.Marshal(ban)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", rec.ID, err)
		}
		n := len(bj) + 1
		if n > room {
			return nil, fmt.Errorf("encode %s: bans[%d] takes %d bytes, more than a message holds (%d): %w", rec.ID, i, n, room, errUnencodable)
		}
		if size+n > room {
			if err := emit(rec.Bans[start:i]); err != nil {
				return nil, err
			}
			start, size = i, 0
		}
		size += n
	}
	if err := emit(rec.Bans[start:]); err != nil {
		return nil, err
	}
	return msgs, nil
}

// enqueue queues rec for the background retry, unless MaxPending purges
// wait already.
func (b *Bus) enqueue(rec Record) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.outbox) >= b.cfg.MaxPending {
		b.met.dropped.Inc()
		return false
	}
	b.outbox = append(b.outbox, rec)
	return true
}

// pending returns the number of purges queued.
func (b *Bus) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.outbox)
}

// republish publishes the queued purges every RetryInterval, and as soon
// as the connection comes back, until ctx is done. It logs what it
// publishes, and why it fails when the reason changes, not every failure.
func (b *Bus) republish(ctx context.Context) {
	t := time.NewTicker(b.cfg.RetryInterval)
	defer t.Stop()
	logged := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kickPublish:
		}
		n, err := b.flush(ctx)
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			b.log.Info("purge bus: published queued purges", "count", n, "pending", b.pending())
		}
		switch {
		case err == nil:
			logged = ""
		case err.Error() != logged:
			logged = err.Error()
			b.log.Warn("purge bus: publishing queued purges failed; retrying", "pending", b.pending(), "err", err)
		}
	}
}

// flush publishes the queued purges, oldest first, each at most once,
// and returns how many it published. It stops at a failure that would
// fail the others too (no connection, no acknowledgement); a purge the
// server refuses goes to the back of the queue, so that it does not hold
// up the others, and its refusal is returned once the others are tried.
// Only one flush runs at a time: republish's, or Close's once republish
// has returned.
func (b *Bus) flush(ctx context.Context) (int, error) {
	n := 0
	var refusal error
	for range b.pending() {
		if !b.nc.IsConnected() {
			return n, errNotConnected
		}
		b.mu.Lock()
		rec := b.outbox[0]
		b.mu.Unlock()
		err := b.publish(ctx, rec)
		if err != nil && !refused(err) {
			return n, err
		}
		b.mu.Lock()
		b.outbox[0] = Record{}
		b.outbox = b.outbox[1:]
		if err != nil {
			b.outbox = append(b.outbox, rec)
			refusal = err
		} else {
			n++
		}
		b.mu.Unlock()
	}
	return n, refusal
}

// refused reports whether a publish failed because of the purge itself:
// the server answered with an error, or the purge cannot be encoded.
func refused(err error) bool {
	return errors.As(err, new(*jetstream.APIError)) || errors.Is(err, errUnencodable)
}
