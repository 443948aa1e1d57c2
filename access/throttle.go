package access

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// pacedWriter paces a response body by byte buckets: the client's and its
// prefix's (shared with the client's other responses) and, past the first
// After bytes, its own LimitRate. Each Write goes out in pieces of at most
// chunk bytes, each once every bucket has its bytes; a client that leaves
// ends the wait (its request's context). It keeps Flush and, through
// Unwrap, what http.ResponseController reaches.
type pacedWriter struct {
	http.ResponseWriter
	ctx     context.Context
	b       buckets
	after   int64 // LimitRate.After; -1 when LimitRate is off
	perResp rate.Limit
	own     *rate.Limiter // made when the response passes after
	written int64
	waited  func(time.Duration) // counts time spent waiting
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), chunk)
		if err := p.wait(k); err != nil {
			return n, err
		}
		m, err := p.ResponseWriter.Write(b[:k])
		n += m
		p.written += int64(m)
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// wait blocks until every bucket has k bytes for this response.
func (p *pacedWriter) wait(k int) error {
	var now, start time.Time
	for _, lim := range [...]*rate.Limiter{p.b.client, p.b.prefix, p.ownFor(k)} {
		if lim == nil {
			continue
		}
		n := k
		if lim == p.own {
			n = int(min(int64(k), p.written+int64(k)-p.after))
		}
		if now.IsZero() {
			now = time.Now() // once for the buckets that have the bytes now
		}
		if start.IsZero() && lim.AllowN(now, n) {
			continue
		}
		if start.IsZero() {
			start = now
		}
		if err := lim.WaitN(p.ctx, n); err != nil {
			return err
		}
	}
	if !start.IsZero() {
		p.waited(time.Since(start))
	}
	return nil
}

// ownFor returns the response's own bucket when some of the next k bytes
// are past LimitRate.After, making it the first time.
func (p *pacedWriter) ownFor(k int) *rate.Limiter {
	if p.after < 0 || p.written+int64(k) <= p.after {
		return nil
	}
	if p.own == nil {
		p.own = rate.NewLimiter(p.perResp, chunk)
	}
	return p.own
}

// Flush sends what is buffered, when the writer underneath can.
func (p *pacedWriter) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the writer underneath, for http.ResponseController.
func (p *pacedWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
