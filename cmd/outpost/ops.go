package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/purge"
)

// ops is what a running node changes and shows while serving: the reloaded
// parts (host set, admin token, certificates), the access log, HTTP/3, and
// the counters and history behind the status page. The node owns it; its
// zero value is ready for newNode.
type ops struct {
	// resolve reads the configuration again (the flags and file serve
	// started with); nil: nothing to reload from.
	resolve func() (*settings, error)

	hosts      atomic.Pointer[hostSet] // the current generation (reload.go)
	token      atomic.Pointer[string]  // the admin token; "" for none
	reloadMu   sync.Mutex              // serialises reloads
	applied    *settings               // what the last reload applied (under reloadMu)
	lastReload atomic.Pointer[reloadResult]
	// retireAfter is how long a replaced host set is kept before its pools
	// are closed. Zero means the drain timeout.
	retireAfter time.Duration
	retiring    sync.WaitGroup
	quitInit    sync.Once
	quitOnce    sync.Once
	quitCh      chan struct{}

	certs     *certStore    // nil without TLS
	h3        *h3           // nil without HTTP/3
	access    *accessLogger // nil without an access log
	exchanges *exchanges    // the access log's requests in progress, for the fills' times; nil without it
	traffic   *traffic
	upstream  upstreamStats
	history   *history
	// sampleEvery is how often the status history takes a sample. Zero
	// means 2s.
	sampleEvery time.Duration

	stopBG    context.CancelFunc
	bg        sync.WaitGroup
	h3Started bool
}

// upstreamStats returns the node's upstream timings.
func (o *ops) upstreamStats() *upstreamStats { return &o.upstream }

// quitting is closed when the node closes its host sets.
func (o *ops) quitting() <-chan struct{} {
	o.quitInit.Do(func() { o.quitCh = make(chan struct{}) })
	return o.quitCh
}

func (o *ops) quit() {
	o.quitting()
	o.quitOnce.Do(func() { close(o.quitCh) })
}

func (o *ops) retireGrace(drain time.Duration) time.Duration {
	if o.retireAfter > 0 {
		return o.retireAfter
	}
	return drain
}

// resolveOps validates the settings of this file's parts: the access log's
// file and format, and HTTP/3.
func (s *settings) resolveOps(fc *fileConfig) error {
	l := &fc.Log
	s.accessFile = l.AccessFile.V
	if s.accessFile != "" {
		s.accessLog = true // a file for it turns it on
		if fi, err := os.Stat(filepath.Dir(s.accessFile)); err != nil || !fi.IsDir() {
			return badField("log.access_file", l.AccessFile.Line, "directory of %q does not exist", s.accessFile)
		}
	}
	s.accessFormat = l.AccessFormat.V
	if s.accessFormat == "" {
		s.accessFormat = s.logFormat
	} else if !slices.Contains(accessFormats, s.accessFormat) {
		return badField("log.access_format", l.AccessFormat.Line, "want %s, not %q", strings.Join(accessFormats, ", "), s.accessFormat)
	}
	s.http3 = s.tlsCert != nil && (fc.HTTP3.Line == 0 || fc.HTTP3.V)
	if fc.HTTP3.V && s.tlsCert == nil {
		return badField("http3", fc.HTTP3.Line, "needs TLS on the public listener (tls.cert and tls.key, or --tls-cert and --tls-key)")
	}
	return nil
}

// recorders are reused across requests: the status counters run on every
// request, so they cost no allocation.
var recorders = sync.Pool{New: func() any { return &recorder{key: make([]byte, 0, 128)} }}

// observe wraps the public handler: Alt-Svc for HTTP/3, the status page's
// counters and the access log.
func (n *node) observe(next http.Handler) (http.Handler, error) {
	al, err := newAccessLogger(n.s, n.log)
	if err != nil {
		return nil, err
	}
	if al != nil {
		n.ops.access = al
		n.closers = append(n.closers, al.close)
	}
	t := newTraffic()
	n.ops.traffic = t
	n.ops.history = newHistory(n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := n.ops.h3; h != nil && r.TLS != nil && r.ProtoMajor < 3 {
			w.Header()["Alt-Svc"] = []string{h.altSvc}
		}
		rec := recorders.Get().(*recorder)
		rec.ResponseWriter, rec.status, rec.bytes, rec.started = w, http.StatusOK, 0, false
		start := time.Now()
		var ex *exchange
		var id string
		if al != nil {
			r, ex = withExchange(r)
			id = exchangeID(r.Host, r.URL.Path)
			n.ops.exchanges.add(id, ex)
		}
		t.begin(rec)
		defer func() {
			if al != nil {
				n.ops.exchanges.remove(id, ex)
			}
			cs := w.Header().Get("Cache-Status")
			t.end(r, rec, cs)
			if al != nil {
				al.log(&line{r: r, status: rec.status, bytes: rec.bytes, start: start, took: time.Since(start), cache: cs, ex: ex})
			}
			rec.ResponseWriter, rec.traffic = nil, nil
			recorders.Put(rec)
		}()
		next.ServeHTTP(rec, r)
	}), nil
}

// requireToken guards next with the admin token current at each request.
// Without a token, next is open unless strict, in which case nothing is
// let through (the PURGE method needs a token to exist).
func (n *node) requireToken(next http.Handler, strict bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := *n.ops.token.Load()
		if tok == "" && !strict {
			next.ServeHTTP(w, r)
			return
		}
		purge.RequireToken(tok, next).ServeHTTP(w, r)
	})
}

// opsRoutes adds the admin endpoints of this file's parts.
func (n *node) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /status", n.statusPage)
	mux.HandleFunc("GET /status.json", n.statusJSON)
	mux.HandleFunc("POST /reload", n.serveReload)
}

// startOps starts what runs beside the listeners: the status sampler, the
// certificate watcher and the HTTP/3 server.
func (n *node) startOps() {
	ctx, cancel := context.WithCancel(context.Background())
	n.ops.stopBG = cancel
	n.ops.bg.Add(1)
	go func() {
		defer n.ops.bg.Done()
		n.ops.history.run(ctx, n.ops.sampleEvery)
	}()
	if c := n.ops.certs; c != nil {
		n.ops.bg.Add(1)
		go func() {
			defer n.ops.bg.Done()
			c.run(ctx)
		}()
	}
	if h := n.ops.h3; h != nil {
		n.ops.h3Started = true
		go h.serve(n)
	}
}

// stopOps stops what startOps started; HTTP/3 requests in flight get until
// ctx is done to finish.
func (n *node) stopOps(ctx context.Context) {
	if h := n.ops.h3; h != nil {
		h.shutdown(ctx, n.ops.h3Started)
	}
	if n.ops.stopBG != nil {
		n.ops.stopBG()
	}
	n.ops.bg.Wait()
}

// reopenLogs reopens the access log file (SIGUSR1).
func (n *node) reopenLogs() {
	if err := n.ops.access.reopen(); err != nil {
		n.log.Error("access log: reopen failed; still writing to the old file", "file", n.s.accessFile, "err", err)
		return
	}
	if n.ops.access != nil && n.ops.access.file != nil {
		n.log.Info("access log reopened", "file", n.s.accessFile)
	}
}
