package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/access"
	"github.com/outpost-cdn/outpost/edge"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Reload without restart (SIGHUP, POST /reload): the configuration is read
// and validated again as at start; when it is valid, what can change while
// serving is swapped whole, and the rest is reported as needing a restart.
//
//   - hosts (names, origins, health checks, cache-key rules, privacy,
//     request headers, timeouts) and parents: a new hostSet is built beside
//     the running one and handed to the edge (edge.Handler.SetHosts); the
//     old set's pools are closed once the drain timeout has passed and no
//     exchange runs on them, so requests routed before the swap finish on
//     the pools they started with. The cache is the same before and after.
//   - the admin token (OUTPOST_ADMIN_TOKEN or admin.token_file);
//   - the public listener's certificates (certs.go), also reloaded when
//     their files change.
//
// An invalid configuration is refused with its field and line, logged, and
// the running one stays. Connections are never closed by a reload.

// hostSet is one generation of the node's virtual hosts: the edge's entries,
// the pools and shields behind them, and the registry their metrics go to
// (a generation of its own, so that the next one can register the same
// pool names while this one finishes).
type hostSet struct {
	hosts     []edge.Host
	pools     []namedPool
	gates     []*access.Gate // each host entry's access rules, in order
	closers   []func() error // newest last
	reg       *prometheus.Registry
	stats     *upstreamStats // the node's, across generations
	exchanges *exchanges     // the access log's requests in progress; nil without it

	mu      sync.Mutex
	active  int  // upstream exchanges in progress: RoundTrip until the body is closed
	retired bool // replaced by a reload
	idle    chan struct{}
}

func newHostSet(n *node) *hostSet {
	if n.s.accessLog && n.ops.exchanges == nil {
		n.ops.exchanges = newExchanges()
	}
	return &hostSet{reg: prometheus.NewRegistry(), stats: n.ops.upstreamStats(), exchanges: n.ops.exchanges, idle: make(chan struct{})}
}

// enter and leave count the exchanges in progress on the set's transports.
func (hs *hostSet) enter() {
	hs.mu.Lock()
	hs.active++
	hs.mu.Unlock()
}

func (hs *hostSet) leave() {
	hs.mu.Lock()
	hs.active--
	if hs.active == 0 && hs.retired {
		close(hs.idle)
	}
	hs.mu.Unlock()
}

// retire marks the set replaced: idle is closed once no exchange runs on it.
func (hs *hostSet) retire() {
	hs.mu.Lock()
	if !hs.retired {
		hs.retired = true
		if hs.active == 0 {
			close(hs.idle)
		}
	}
	hs.mu.Unlock()
}

// close closes the set's pools and shields, newest first.
func (hs *hostSet) close() error {
	var errs []error
	for i := len(hs.closers) - 1; i >= 0; i-- {
		errs = append(errs, hs.closers[i]())
	}
	hs.closers = nil
	return errors.Join(errs...)
}

// retire closes a replaced host set once the drain timeout has passed
// (requests routed just before the swap may not have reached its pools
// yet) and no exchange runs on it, or at once when the node stops.
func (n *node) retire(old *hostSet) {
	old.retire()
	quit := n.ops.quitting()
	n.ops.retiring.Add(1)
	go func() {
		defer n.ops.retiring.Done()
		t := time.NewTimer(n.ops.retireGrace(n.s.drain))
		defer t.Stop()
		select {
		case <-t.C:
			select {
			case <-old.idle:
			case <-quit:
			}
		case <-quit:
		}
		if err := old.close(); err != nil {
			n.log.Warn("reload: close the replaced origin pools", "err", err)
		}
	}()
}

// closeHosts closes the current host set and those being retired; it is
// one of the node's closers.
func (n *node) closeHosts() error {
	n.ops.quit()
	n.ops.retiring.Wait()
	if hs := n.ops.hosts.Load(); hs != nil {
		return hs.close()
	}
	return nil
}

// gatherer is what /metrics serves: the node's registry and the current
// host set's.
func (n *node) gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{n.reg, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return n.ops.hosts.Load().reg.Gather()
	})}
}

// reloadResult is what a reload did, as POST /reload answers it and
// /status.json shows the last one.
type reloadResult struct {
	At time.Time `json:"at"`
	OK bool      `json:"ok"`
	// Error is why the reload was refused (the field and line).
	Error string `json:"error,omitempty"`
	// Changed names what was swapped: hosts, token, certificates.
	Changed []string `json:"changed"`
	// Restart names the settings that changed but take effect only at
	// the next start.
	Restart []string `json:"restart_required"`
}

// errNoConfig is a reload of a node that has nothing to read again.
var errNoConfig = errors.New("reload: this node was not started by serve (nothing to read again)")

// reload reads the configuration again and applies it, or refuses it and
// keeps the running one. Reloads are serialised.
func (n *node) reload() (*reloadResult, error) {
	n.ops.reloadMu.Lock()
	defer n.ops.reloadMu.Unlock()
	res, err := n.applyConfig()
	res.At = time.Now()
	if err != nil {
		res.Error = err.Error()
		n.log.Error("reload refused; the running configuration stays", "err", err)
	} else {
		res.OK = true
		n.log.Info("reloaded", "changed", res.Changed, "restart_required", res.Restart)
	}
	n.ops.lastReload.Store(res)
	return res, err
}

// applyConfig builds everything a new configuration needs before swapping
// anything, so a failure leaves the node as it was.
func (n *node) applyConfig() (*reloadResult, error) {
	res := &reloadResult{Changed: []string{}, Restart: []string{}}
	if n.ops.resolve == nil {
		return res, errNoConfig
	}
	s, err := n.ops.resolve()
	if err != nil {
		return res, err
	}
	token, err := s.adminToken()
	if err != nil {
		return res, err
	}
	prev := n.ops.applied
	if prev == nil {
		prev = n.s
	}
	var set *hostSet
	if hostsChanged(prev, s) {
		if set, err = n.buildHosts(s); err != nil {
			return res, err
		}
	}
	var certs *certSet
	if n.ops.certs != nil && s.tlsCert != nil {
		if certs, err = loadCertSet(s.tlsFiles); err != nil {
			if set != nil {
				set.close()
			}
			return res, err
		}
	}
	// Valid: swap.
	if set != nil {
		if err := n.edge.SetHosts(set.hosts); err != nil {
			set.close()
			return res, err
		}
		n.retire(n.ops.hosts.Swap(set))
		res.Changed = append(res.Changed, "hosts")
	}
	if old := n.ops.token.Swap(&token); *old != token {
		res.Changed = append(res.Changed, "token")
	}
	if certs != nil && n.ops.certs.store(certs) {
		res.Changed = append(res.Changed, "certificates")
	}
	res.Restart = restartNeeded(n.s, s)
	n.ops.applied = s
	return res, nil
}

// hostsChanged reports whether the settings a host set is built from
// differ.
func hostsChanged(a, b *settings) bool {
	return !reflect.DeepEqual(a.hosts, b.hosts) || !slices.Equal(a.origins, b.origins) ||
		!slices.Equal(a.parents, b.parents) || a.parentHealth != b.parentHealth ||
		a.cache.setCookie != b.cache.setCookie
}

// liveSettings lists, by configuration field, the settings a running node
// keeps from its start: a reload that changes one reports it as needing a
// restart.
var liveSettings = []struct {
	field string
	get   func(*settings) any
}{
	{"listen", func(s *settings) any { return s.listen }},
	{"admin.listen", func(s *settings) any { return s.admin }},
	{"admin.purge_method", func(s *settings) any { return s.purgeMethod }},
	{"name", func(s *settings) any { return s.name }},
	{"storage.memory", func(s *settings) any { return s.memory }},
	{"storage.max_object", func(s *settings) any { return s.maxObject }},
	{"storage.slice_size", func(s *settings) any { return s.sliceSize }},
	{"storage.slice_threshold", func(s *settings) any { return s.sliceThresh }},
	{"storage.disk.dir", func(s *settings) any { return s.cacheDir }},
	{"storage.disk.size", func(s *settings) any { return s.disk }},
	{"storage.disk.max_object", func(s *settings) any { return s.diskMaxObj }},
	{"limits", func(s *settings) any { return s.limits }},
	{"log.format", func(s *settings) any { return s.logFormat }},
	{"log.access", func(s *settings) any { return s.accessLog }},
	{"log.access_file", func(s *settings) any { return s.accessFile }},
	{"log.access_format", func(s *settings) any { return s.accessFormat }},
	{"drain_timeout", func(s *settings) any { return s.drain }},
	{"send_timeout", func(s *settings) any { return s.sendTimeout }},
	{"purge_bus", func(s *settings) any { return [3]any{s.busURL, s.busStream, s.busReadyWait} }},
	{"cache", func(s *settings) any { c := s.cache; c.setCookie = ""; return c }},
	{"compression", func(s *settings) any { return s.compression }},
	{"trusted_proxies", func(s *settings) any { return s.trustedProxies }},
	{"tls", func(s *settings) any { return s.tlsCert != nil }},
	{"tls.session_tickets", func(s *settings) any { return s.tickets }}, // the key file's content is re-read while serving (tickets.go)
	{"http3", func(s *settings) any { return s.http3 }},
	{"fast_path", func(s *settings) any { return s.fastPath }},
}

// restartNeeded names the fields whose new value takes effect only at the
// next start.
func restartNeeded(running, next *settings) []string {
	out := []string{}
	for _, l := range liveSettings {
		if !reflect.DeepEqual(l.get(running), l.get(next)) {
			out = append(out, l.field)
		}
	}
	return out
}

// serveReload answers POST /reload: 200 with what changed, or 400 with the
// error, and the running configuration stays.
func (n *node) serveReload(w http.ResponseWriter, r *http.Request) {
	res, err := n.reload()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	switch {
	case errors.Is(err, errNoConfig):
		code = http.StatusConflict
	case err != nil:
		code = http.StatusBadRequest
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(res)
}
