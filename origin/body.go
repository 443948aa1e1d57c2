package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// body wraps a response body from server s. It fails a Read that waits
// longer than the idle timeout, and, once, when the body ends (EOF, error or
// Close), releases the request's context and in-flight slot and records the
// outcome for passive health checks. Close may be called while a Read runs.
type body struct {
	rc     io.ReadCloser
	g      *group
	s      *server
	req    *http.Request // the request sent upstream; its context is the exchange's
	cancel context.CancelCauseFunc
	status error // non-nil when the response status itself is a failure
	idle   time.Duration
	timer  *time.Timer // runs only during a Read

	expired atomic.Bool // set before cancel(ErrBodyTimeout)
	ended   atomic.Bool
}

// newBody wraps resp's body; cancel ends the context of req, the request
// sent upstream.
func newBody(g *group, s *server, req *http.Request, resp *http.Response, cancel context.CancelCauseFunc) *body {
	b := &body{rc: resp.Body, g: g, s: s, req: req, cancel: cancel, idle: g.idleRead}
	b.timer = time.AfterFunc(b.idle, b.expire)
	b.timer.Stop() // until a Read
	if g.statusFailures && (resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) {
		b.status = &Error{Server: s.name, Err: statusError(resp.StatusCode)}
	}
	return b
}

// Read reads from the server, failing with ErrBodyTimeout (inside an *Error)
// when the server sends nothing for the idle timeout.
func (b *body) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		b.end(nil)
		return n, err
	}
	if b.expired.Load() {
		err = ErrBodyTimeout
	}
	err = &Error{Server: b.s.name, Err: err}
	b.end(err)
	return n, err
}

// expire fails the Read in progress: the transport ends it when its
// context is canceled.
func (b *body) expire() {
	b.expired.Store(true)
	b.cancel(ErrBodyTimeout)
}

// Close closes the body. Closing it early is no failure of the server's.
func (b *body) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.end(nil)
	return err
}

// end runs once, when the body ends; failure is nil unless a Read failed.
func (b *body) end(failure error) {
	if !b.ended.CompareAndSwap(false, true) {
		return
	}
	switch {
	case failure == nil:
		b.g.record(b.s, b.status)
	case !clientGone(b.req, b.expired.Load()):
		b.g.record(b.s, failure)
	}
	b.s.inflight.Add(-1)
	b.cancel(nil)
}

// clientGone reports whether the exchange of req failed because its client
// canceled it, which says nothing of the server's health; a deadline that
// passed, or the idle read timeout, does.
func clientGone(req *http.Request, idleExpired bool) bool {
	return !idleExpired && errors.Is(req.Context().Err(), context.Canceled)
}
