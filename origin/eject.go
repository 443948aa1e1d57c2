package origin

import (
	"fmt"
	"time"
)

// Ejection configures passive health checks, which watch client traffic.
// A server is ejected (receives no client traffic) when Failures requests in
// a row fail, or when at least Ratio of the requests that ended within a
// Window failed, once that window has seen MinRequests. An ejection lasts
// Backoff; it doubles, up to MaxBackoff, each time the server is ejected again
// within MaxBackoff of its return. When an ejection ends the server is on
// probation: the first request to end there decides, a success ending the
// ejection and a failure ejecting it again at once.
//
// A failure is a request that got no response, or whose response body failed
// (an idle read timeout, a reset connection); for a Pool, a 502, 503 or 504
// response is a failure too. A request its client canceled counts for
// nothing. The zero Ejection has the defaults below.
type Ejection struct {
	// Failures is the number of failed requests in a row that eject a server.
	// Zero means 5; a negative number turns this rule off.
	Failures int
	// Ratio is the share of failed requests within Window that ejects a
	// server, up to 1. Zero means 0.5; a negative number turns this rule off.
	Ratio float64
	// Window is the span over which Ratio is measured; each window starts
	// with the first request to end after the last one closed. Zero means 10s.
	Window time.Duration
	// MinRequests is the number of requests a window must see before Ratio
	// applies. Zero means 20.
	MinRequests int
	// Backoff is the length of a first ejection. Zero means 10s.
	Backoff time.Duration
	// MaxBackoff bounds an ejection's length. Zero means 5m.
	MaxBackoff time.Duration
}

// withDefaults returns e with its zero fields set, or an error naming the
// first bad field.
func (e Ejection) withDefaults() (Ejection, error) {
	setDefault(&e.Failures, 5)
	setDefault(&e.Ratio, 0.5)
	setDefault(&e.Window, 10*time.Second)
	setDefault(&e.MinRequests, 20)
	setDefault(&e.Backoff, 10*time.Second)
	setDefault(&e.MaxBackoff, 5*time.Minute)
	switch {
	case !(e.Ratio <= 1): // NaN too
		return e, fmt.Errorf("ejection.ratio %v: must not exceed 1", e.Ratio)
	case e.Window < 0:
		return e, fmt.Errorf("ejection.window %v: must be positive", e.Window)
	case e.MinRequests < 0:
		return e, fmt.Errorf("ejection.min_requests %d: must be positive", e.MinRequests)
	case e.Backoff < 0:
		return e, fmt.Errorf("ejection.backoff %v: must be positive", e.Backoff)
	case e.MaxBackoff < e.Backoff:
		return e, fmt.Errorf("ejection.max_backoff %v: must not be less than ejection.backoff %v", e.MaxBackoff, e.Backoff)
	}
	return e, nil
}

// off reports whether both ejection rules are turned off.
func (e Ejection) off() bool { return e.Failures < 0 && e.Ratio < 0 }

// passiveState is a server's passive-check record, guarded by server.mu.
type passiveState struct {
	consecutive    int   // failures in a row
	windowStart    int64 // group clock
	windowRequests int
	windowFailures int
	streak         int   // ejections in the current streak, for the back-off
	returnAt       int64 // group clock: end of the last ejection
}

// record counts the end of a request to s: failure is nil for a success.
// It ejects s, or ends its ejection, as Ejection describes.
func (g *group) record(s *server, failure error) {
	now := g.now()
	if failure != nil {
		s.failures.Add(1)
		s.lastFailure.Store(now + 1)
	}
	e := &g.ejection
	if e.off() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.passive
	if until := s.ejectedUntil.Load(); until != 0 {
		switch {
		case now < until:
			// A request sent before the ejection ended: its outcome
			// changes nothing.
		case failure == nil:
			s.ejectedUntil.Store(0)
			g.log.Info("server returned", "server", s.name)
		default:
			g.eject(s, now, "failed on probation", failure)
		}
		return
	}
	if now-p.windowStart >= int64(e.Window) {
		p.windowStart, p.windowRequests, p.windowFailures = now, 0, 0
	}
	p.windowRequests++
	if failure == nil {
		p.consecutive = 0
		return
	}
	p.consecutive++
	p.windowFailures++
	ratio := float64(p.windowFailures) / float64(p.windowRequests)
	switch {
	case e.Failures > 0 && p.consecutive >= e.Failures:
		g.eject(s, now, fmt.Sprintf("%d failures in a row", p.consecutive), failure)
	case e.Ratio > 0 && p.windowRequests >= e.MinRequests && ratio >= e.Ratio:
		g.eject(s, now, fmt.Sprintf("%d of %d requests failed", p.windowFailures, p.windowRequests), failure)
	}
}

// eject takes s out of traffic from now, for a back-off that grows with the
// streak. s.mu is held.
func (g *group) eject(s *server, now int64, reason string, failure error) {
	e := &g.ejection
	p := &s.passive
	if p.streak > 0 && now-p.returnAt > int64(e.MaxBackoff) {
		p.streak = 0 // it stayed up long enough: start over
	}
	d := e.Backoff
	for range p.streak {
		if d >= e.MaxBackoff/2 {
			d = e.MaxBackoff
			break
		}
		d *= 2
	}
	d = min(d, e.MaxBackoff)
	p.streak++
	p.returnAt = now + int64(d)
	p.consecutive, p.windowStart, p.windowRequests, p.windowFailures = 0, now, 0, 0
	s.ejectedUntil.Store(p.returnAt)
	s.ejections.Add(1)
	g.log.Warn("server ejected", "server", s.name, "reason", reason, "for", d, "error", failure)
}
