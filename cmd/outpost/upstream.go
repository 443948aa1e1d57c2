package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// meteredTransport is a host's transport as the edge sees it: it counts the
// exchanges in progress on its host set (so a reload closes the old pools
// only once they are done), times each exchange for the status page's
// latency per server, and adds the time and bytes to the access log's record
// of the client request that caused it.
type meteredTransport struct {
	rt  http.RoundTripper
	set *hostSet
}

// meter wraps a transport of the set.
func (hs *hostSet) meter(rt http.RoundTripper) http.RoundTripper {
	return &meteredTransport{rt: rt, set: hs}
}

func (m *meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	m.set.enter()
	start := time.Now()
	resp, err := m.rt.RoundTrip(req)
	took := time.Since(start)
	// A request passed through carries its client's context, and with it
	// the access log's exchange (as net/http/httptrace's hooks travel); a
	// fill runs in the edge's own context, so its client is found by URL.
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		ex = m.set.exchanges.find(req.URL.Host, req.URL.Path)
	}
	if err != nil {
		m.set.leave()
		m.set.stats.observe("", took, true)
		ex.add(took, 0)
		return nil, err
	}
	server := ""
	if resp.Request != nil && resp.Request.URL != nil { // the server the pool chose
		server = resp.Request.URL.Scheme + "://" + resp.Request.URL.Host
	}
	m.set.stats.observe(server, took, resp.StatusCode >= 500)
	resp.Body = &meteredBody{ReadCloser: resp.Body, set: m.set, ex: ex, start: start}
	return resp, nil
}

// meteredBody ends its exchange when closed.
type meteredBody struct {
	io.ReadCloser
	set   *hostSet
	ex    *exchange
	start time.Time
	n     atomic.Int64 // a Close may come from another goroutine than the reads
	once  sync.Once
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *meteredBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.ex.add(time.Since(b.start), b.n.Load())
		b.set.leave()
	})
	return err
}

// exchangeKey is the context key of the *exchange of a client request.
type exchangeKey struct{}

// exchange is what a client request cost upstream: the time and body bytes
// of the exchanges made on its behalf (none for a hit or a coalesced
// waiter; several for a sliced range). Safe for concurrent use: the fill
// that records it may outlive the handler that logs it.
type exchange struct {
	count atomic.Int32
	nanos atomic.Int64
	bytes atomic.Int64
}

// add records one exchange; a nil x records nothing.
func (x *exchange) add(d time.Duration, n int64) {
	if x == nil {
		return
	}
	x.count.Add(1)
	x.nanos.Add(int64(d))
	x.bytes.Add(n)
}

// withExchange returns r with a new exchange in its context.
func withExchange(r *http.Request) (*http.Request, *exchange) {
	x := &exchange{}
	return r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)), x
}

// exchanges finds the exchange of the client request a fill is made for:
// the oldest request in progress for the same host and path without an
// exchange yet (the leader of a coalesced fill arrived first), else the
// oldest for them. Safe for concurrent use; nil finds nothing.
type exchanges struct {
	mu sync.Mutex
	m  map[string][]*exchange
}

func newExchanges() *exchanges { return &exchanges{m: map[string][]*exchange{}} }

// exchangeID is the key of a request: lowercase host without port, and
// path (a fill's query may be rewritten by cache-key rules).
func exchangeID(host, path string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]")) + path
}

func (e *exchanges) add(id string, x *exchange) {
	e.mu.Lock()
	e.m[id] = append(e.m[id], x)
	e.mu.Unlock()
}

func (e *exchanges) remove(id string, x *exchange) {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.m[id]
	for i, y := range list {
		if y == x {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(e.m, id)
	} else {
		e.m[id] = list
	}
}

func (e *exchanges) find(host, path string) *exchange {
	if e == nil {
		return nil
	}
	id := exchangeID(host, path)
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.m[id]
	for _, x := range list {
		if x.count.Load() == 0 {
			return x
		}
	}
	if len(list) > 0 {
		return list[0]
	}
	return nil
}

// upstreamStats times the exchanges with each upstream server, for the
// status page. Safe for concurrent use.
type upstreamStats struct {
	mu      sync.Mutex
	servers map[string]*serverTiming
}

// serverTiming is one server's latency: an exponentially weighted mean of
// the time to response headers and the last exchange's.
type serverTiming struct {
	Server   string    `json:"server"`
	Mean     float64   `json:"latency_ms"` // weighted mean, recent exchanges weigh most
	Last     float64   `json:"last_ms"`
	Count    int64     `json:"exchanges"`
	Errors   int64     `json:"errors"`
	LastSeen time.Time `json:"last_seen"`
}

// latencyWeight is the weight of the newest exchange in the mean.
const latencyWeight = 0.2

func (u *upstreamStats) observe(server string, d time.Duration, failed bool) {
	if server == "" {
		server = "(no response)"
	}
	ms := float64(d) / float64(time.Millisecond)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.servers == nil {
		u.servers = map[string]*serverTiming{}
	}
	st := u.servers[server]
	if st == nil {
		if len(u.servers) >= 1024 { // bounded: servers come from the configuration
			return
		}
		st = &serverTiming{Server: server, Mean: ms}
		u.servers[server] = st
	}
	st.Mean += latencyWeight * (ms - st.Mean)
	st.Last = ms
	st.Count++
	if failed {
		st.Errors++
	}
	st.LastSeen = time.Now()
}

// snapshot returns a copy of every server's timing, by server.
func (u *upstreamStats) snapshot() map[string]serverTiming {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]serverTiming, len(u.servers))
	for k, v := range u.servers {
		out[k] = *v
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
