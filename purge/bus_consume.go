package purge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The consumer's settings.
const (
	// ackWait is how long the stream waits for a delivered purge to be
	// acknowledged before delivering it again. Applying one takes
	// milliseconds; apply extends the wait while the Index fails. (A
	// node that starts with purges unacknowledged has them delivered again
	// at once, see consumeOnce; only with a NATS server older than the
	// consumer reset API does it wait ackWait for them.)
	ackWait = 30 * time.Second
	// pullBatch is how many purges the consumer asks for at a time.
	pullBatch = 64
)

// The results of a delivered purge, as outpost_purge_bus_applied_total
// counts them.
const (
	resultApplied   = "applied"   // recorded by the Index
	resultDuplicate = "duplicate" // held already: this node's own, or a redelivery
	resultInvalid   = "invalid"   // not a valid Record: acknowledged and dropped
)

// consume applies the fleet's purges until ctx is done: it sets up the
// stream and the node's consumer, applies what the consumer delivers,
// and after a failure starts again once the connection is back or after
// RetryInterval. It stops early only if the Index is closed.
func (b *Bus) consume(ctx context.Context) {
	logged := ""
	for {
		started, err := b.consumeOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrClosed):
			b.log.Error("purge bus: the index is closed; no longer applying the fleet's purges")
			return
		case started:
			logged = ""
		}
		// The connection's handlers say when it is lost; say other
		// failures when they change.
		if b.nc.IsConnected() && err.Error() != logged {
			b.log.Warn("purge bus: consuming the fleet's purges failed; retrying", "err", err)
			logged = err.Error()
		}
		t := time.NewTimer(b.cfg.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.kickConsume:
		case <-t.C:
		}
		t.Stop()
	}
}

// consumeOnce sets up the stream and the consumer, then applies what the
// consumer delivers until an error. started reports that it got as far as
// consuming.
func (b *Bus) consumeOnce(ctx context.Context) (started bool, err error) {
	if !b.nc.IsConnected() {
		return false, errNotConnected
	}
	actx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	stream, err := b.stream(actx)
	if err != nil {
		return false, err
	}
	kick(b.kickPublish) // the stream exists: what is queued can go
	inactive := b.cfg.MaxAge
	if ma := stream.CachedInfo().Config.MaxAge; ma > 0 {
		inactive = ma
	}
	cons, err := stream.CreateOrUpdateConsumer(actx, jetstream.ConsumerConfig{
		Durable:       b.consumer,
		Description:   "purges applied by Outpost node " + b.cfg.Node,
		FilterSubject: b.cfg.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		// A node gone for longer than purges are kept has nothing left
		// to replay: its consumer goes too, rather than pile up.
		InactiveThreshold: inactive,
	})
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", b.consumer, err)
	}
	ci := cons.CachedInfo()
	if ci.NumAckPending > 0 {
		// Purges delivered to an earlier run of this node, or to a pull
		// request it left behind, and never acknowledged would come back
		// only after ackWait, and keep the node from being ready until
		// then: have everything after the acknowledgement floor delivered
		// again now. Apply ignores those applied already.
		r, err := stream.ResetConsumer(actx, b.consumer)
		if err != nil {
			b.log.Info("purge bus: cannot have unacknowledged purges delivered again at once; they come back after the acknowledgement wait",
				"unacknowledged", ci.NumAckPending, "wait", ackWait, "err", err)
		} else {
			ci = r.ConsumerInfo
		}
	}
	si, err := stream.Info(actx)
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", b.cfg.Stream, err)
	}
	if err := b.coverGap(ctx, ci, si); err != nil {
		return false, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pullBatch), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", b.consumer, err)
	}
	defer it.Stop()
	b.log.Info("purge bus: consuming the fleet's purges", "pending", ci.NumPending, "unacknowledged", ci.NumAckPending)
	// What the stream holds now is what this node must apply to be ready.
	target := si.State.LastSeq
	if ci.NumPending == 0 && ci.NumAckPending == 0 {
		b.markReady()
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return true, err
		}
		if err := b.handle(ctx, cons, msg, target); err != nil {
			return true, err
		}
	}
}

// stream returns the purge stream, creating it if it is missing.
func (b *Bus) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", b.cfg.Stream, err)
	}
	s, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "Outpost purges: every node applies each one (purge.Bus)",
		Subjects:    []string{b.cfg.Subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      b.cfg.MaxAge,
		MaxMsgs:     b.cfg.MaxMsgs,
		MaxBytes:    b.cfg.MaxBytes,
		Replicas:    b.cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another node was quicker
		s, err = b.js.Stream(ctx, b.cfg.Stream)
	} else if err == nil {
		b.log.Info("purge bus: created the stream", "subject", b.cfg.Subject,
			"max_age", b.cfg.MaxAge, "max_msgs", b.cfg.MaxMsgs, "max_bytes", b.cfg.MaxBytes, "replicas", b.cfg.Replicas)
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", b.cfg.Stream, err)
	}
	return s, nil
}

// coverGap handles purges this node will never receive: those the stream
// dropped (its limits) before the node acknowledged them, found as a gap
// between the consumer's acknowledgement floor and the stream's first
// message. It cannot know what they banned, so it bans everything stored
// before the oldest purge the stream still holds (or, with none, its
// last), which every dropped purge predates. For a new node, whose
// consumer has acknowledged nothing, this bans only what a disk cache
// brought from before, which is what it must.
func (b *Bus) coverGap(ctx context.Context, ci *jetstream.ConsumerInfo, si *jetstream.StreamInfo) error {
	st := si.State
	if st.FirstSeq <= ci.AckFloor.Stream+1 {
		return nil
	}
	at := st.FirstTime
	if st.Msgs == 0 || at.IsZero() {
		at = st.LastTime
	}
	if at.IsZero() {
		at = time.Now()
	}
	// The ID is the same for the same gap, so setting up again after a
	// reconnect does not add another record.
	rec := Record{ID: fmt.Sprintf("bus-gap-%d-%d", st.FirstSeq, at.UnixNano()), Time: at, Bans: []Ban{{Kind: KindAll}}}
	added, err := b.ix.Apply(ctx, rec)
	if err != nil {
		return fmt.Errorf("ban what dropped purges may have banned: %w", err)
	}
	if !added {
		return nil
	}
	args := []any{"acknowledged_up_to", ci.AckFloor.Stream, "first_held", st.FirstSeq, "banned_before", at, "id", rec.ID}
	if ci.Delivered.Stream == 0 { // a new node, most likely: nothing to lose
		b.log.Info("purge bus: the stream no longer holds its oldest purges, and this node never received any; banning everything stored before those it holds", args...)
	} else {
		b.log.Warn("purge bus: the stream dropped purges before this node applied them; banning everything stored before those it holds", args...)
	}
	return nil
}

// handle applies one delivered purge and acknowledges it. It returns an
// error only when consuming must stop: ctx done, the Index closed, or the
// connection lost while it checks whether the node has caught up.
func (b *Bus) handle(ctx context.Context, cons jetstream.Consumer, msg jetstream.Msg, target uint64) error {
	meta, err := msg.Metadata()
	if err != nil {
		msg.Term() // not a JetStream message; cannot happen
		return nil
	}
	result, err := b.apply(ctx, msg, meta)
	if err != nil {
		return err
	}
	b.met.applied.WithLabelValues(result).Inc()
	if b.isReady() || meta.Sequence.Stream < target && meta.NumPending > 0 {
		msg.Ack() // a lost acknowledgement brings a redelivery, which Apply ignores
		return nil
	}
	// Perhaps caught up. Ask the server, once it has counted this
	// acknowledgement: it alone knows whether purges delivered before are
	// still unacknowledged.
	actx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		return fmt.Errorf("acknowledge purge %d: %w", meta.Sequence.Stream, err)
	}
	ci, err := cons.Info(actx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", b.consumer, err)
	}
	if ci.AckFloor.Stream >= target || ci.NumPending == 0 && ci.NumAckPending == 0 {
		b.markReady()
	}
	return nil
}

// apply applies a delivered purge with Index.Apply and returns its result.
// While the Index fails to record it (its log cannot be written), apply
// keeps the message and tries again every RetryInterval: a node must not
// drop a purge, nor report ready without it.
func (b *Bus) apply(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) (string, error) {
	var rec Record
	if err := json.Unmarshal(msg.Data(), &rec); err != nil {
		b.log.Warn("purge bus: dropping a message that is not a purge", "seq", meta.Sequence.Stream, "err", err)
		return resultInvalid, nil
	}
	wait := min(b.cfg.RetryInterval, ackWait/3)
	for {
		added, err := b.ix.Apply(ctx, rec)
		if err == nil && added {
			return resultApplied, nil
		}
		if err == nil {
			return resultDuplicate, nil
		}
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			b.log.Warn("purge bus: dropping an invalid purge", "seq", meta.Sequence.Stream, "id", rec.ID, "err", ve.Reason)
			return resultInvalid, nil
		}
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return "", err
		}
		b.log.Warn("purge bus: recording a purge from the fleet failed; retrying", "seq", meta.Sequence.Stream, "id", rec.ID, "err", err)
		msg.InProgress() // keep it ours past ackWait
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}
