package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The status page (GET /status on the admin listener) is one embedded HTML
// file, with its style and script inline and nothing fetched from elsewhere,
// that polls GET /status.json and draws the last minutes as small charts.
// /status.json is the same data for scripts: the history of samples taken
// every 2 seconds (10 minutes of them) and the state now.

//go:embed status.html
var statusHTML []byte

// historyLen is how many samples the history keeps.
const historyLen = 300

// topDecay is how often the top URL counts halve.
const topDecay = 5 * time.Minute

// history samples the node's counters at a fixed interval, keeping the
// rates of the last historyLen intervals. Safe for concurrent use.
type history struct {
	n         *node
	mu        sync.Mutex
	every     time.Duration
	samples   []sample // oldest first
	prev      counters
	havePrev  bool
	lastDecay time.Time
}

// counters are the cumulative values a sample is the difference of.
type counters struct {
	at            time.Time
	requests      map[string]float64 // outpost_requests_total by cache
	cacheBytes    int64
	upstreamBytes int64
	collapsed     int64
}

// sample is one interval's rates and the gauges at its end.
type sample struct {
	T            int64              `json:"t"` // Unix milliseconds at the end of the interval
	RPS          float64            `json:"rps"`
	ByClass      map[string]float64 `json:"by_class"` // requests/s by how the cache answered
	HitRatio     *float64           `json:"hit_ratio"`
	ByteHitRatio *float64           `json:"byte_hit_ratio"`
	CacheBPS     float64            `json:"cache_bytes_per_second"`
	UpstreamBPS  float64            `json:"upstream_bytes_per_second"`
	CollapsedPS  float64            `json:"collapsed_per_second"`
	Flights      float64            `json:"fills_in_flight"`
	Waiting      int64              `json:"waiting_clients"`
	MemoryBytes  float64            `json:"memory_bytes"`
	DiskBytes    *float64           `json:"disk_bytes"`
}

func newHistory(n *node) *history { return &history{n: n} }

// run samples every d (zero: 2s) until ctx is done.
func (h *history) run(ctx context.Context, d time.Duration) {
	if d <= 0 {
		d = 2 * time.Second
	}
	h.mu.Lock()
	h.every = d
	h.mu.Unlock()
	h.sample(time.Now())
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.sample(now)
		}
	}
}

// sample takes one sample at now.
func (h *history) sample(now time.Time) {
	fams := h.n.families()
	tr := h.n.ops.traffic
	cur := counters{
		at:            now,
		requests:      labelValues(fams["outpost_requests_total"], "cache"),
		cacheBytes:    tr.cacheBytes.Load(),
		upstreamBytes: tr.upstreamBytes.Load(),
		collapsed:     tr.collapsed.Load(),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastDecay.IsZero() {
		h.lastDecay = now
	} else if now.Sub(h.lastDecay) >= topDecay {
		tr.decay()
		h.lastDecay = now
	}
	prev, have := h.prev, h.havePrev
	h.prev, h.havePrev = cur, true
	if !have {
		return
	}
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return
	}
	s := sample{T: now.UnixMilli(), ByClass: map[string]float64{}}
	var hits, all float64
	for class, v := range cur.requests {
		d := v - prev.requests[class]
		s.ByClass[class] = d / secs
		all += d
		if class == "hit" || class == "stale" {
			hits += d
		}
	}
	s.RPS = all / secs
	if all > 0 {
		s.HitRatio = ptr(hits / all)
	}
	cb, ub := float64(cur.cacheBytes-prev.cacheBytes), float64(cur.upstreamBytes-prev.upstreamBytes)
	s.CacheBPS, s.UpstreamBPS = cb/secs, ub/secs
	if cb+ub > 0 {
		s.ByteHitRatio = ptr(cb / (cb + ub))
	}
	s.CollapsedPS = float64(cur.collapsed-prev.collapsed) / secs
	s.Flights = gaugeValue(fams["outpost_flights_in_progress"])
	s.Waiting = tr.waiting.Load()
	s.MemoryBytes = float64(h.n.mem.Stats().Bytes)
	if h.n.disk != nil {
		s.DiskBytes = ptr(float64(h.n.disk.Stats().Bytes))
	}
	if len(h.samples) == historyLen {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:historyLen-1]
	}
	h.samples = append(h.samples, s)
}

// snapshot returns a copy of the samples and the interval.
func (h *history) snapshot() ([]sample, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sample(nil), h.samples...), h.every
}

func ptr(v float64) *float64 { return &v }

// families gathers the node's metrics by name. A failure to gather gives
// what was gathered.
func (n *node) families() map[string]*dto.MetricFamily {
	mfs, _ := n.gatherer().Gather()
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// labelValues sums a counter or gauge family by the value of one label.
func labelValues(mf *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		key := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		out[key] += metricValue(m)
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// gaugeValue is the sum of a family's values (0 when absent).
func gaugeValue(mf *dto.MetricFamily) float64 {
	var v float64
	if mf != nil {
		for _, m := range mf.GetMetric() {
			v += metricValue(m)
		}
	}
	return v
}

// statusDoc is GET /status.json.
type statusDoc struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Now      time.Time `json:"now"`
	Uptime   float64   `json:"uptime_seconds"`
	Ready    bool      `json:"ready"`
	TLS      bool      `json:"tls"`
	HTTP3    bool      `json:"http3"`
	Interval float64   `json:"sample_seconds"`
	Samples  []sample  `json:"samples"` // oldest first
	// Totals since start: requests by how the cache answered them, and
	// body bytes by where they came from.
	Requests    map[string]float64 `json:"requests"`
	Bytes       map[string]int64   `json:"bytes"`
	InProgress  int64              `json:"requests_in_progress"`
	Waiting     int64              `json:"waiting_clients"`
	Flights     float64            `json:"fills_in_flight"`
	Tiers       []tierDoc          `json:"tiers"`
	Memory      map[string]float64 `json:"memory"` // outpost_memory_* gauges this build exports
	Origins     []originDoc        `json:"origins"`
	Purges      purgesDoc          `json:"purges"`
	TopRequests []topDoc           `json:"top_by_requests"`
	TopBytes    []topDoc           `json:"top_by_bytes"`
	Reload      *reloadResult      `json:"last_reload"`
}

type tierDoc struct {
	Name     string   `json:"name"`
	Bytes    int64    `json:"bytes"`
	MaxBytes int64    `json:"max_bytes"`
	Objects  *float64 `json:"objects"` // null when the tier does not count them
}

type originDoc struct {
	Pool         string     `json:"pool"`
	Server       string     `json:"server"`
	Up           bool       `json:"up"`
	CheckDown    bool       `json:"check_down"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	InFlight     int64      `json:"in_flight"`
	Requests     uint64     `json:"requests"`
	Failures     uint64     `json:"failures"`
	LatencyMS    *float64   `json:"latency_ms"` // weighted mean of recent exchanges; null before the first
	LastMS       *float64   `json:"last_ms"`
}

type purgesDoc struct {
	ActiveBans int        `json:"active_bans"`
	Bus        *busDoc    `json:"bus"` // null without a purge bus
	Recent     []purgeDoc `json:"recent"`
}

// busDoc is the fleet bus as this node sees it.
type busDoc struct {
	// State is where the node is in replaying the purges it missed while
	// down: replaying, caught_up, or late (ready anyway after
	// purge_bus.ready_timeout).
	State     string  `json:"state"`
	Connected bool    `json:"connected"`
	Pending   float64 `json:"pending"` // purges issued here not yet published
	Published float64 `json:"published"`
	Applied   float64 `json:"applied"`
}

type purgeDoc struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Soft    bool      `json:"soft"`
	Targets []string  `json:"targets"`
	Purged  int64     `json:"purged"`
}

type topDoc struct {
	URL    string  `json:"url"`
	Weight float64 `json:"value"` // requests or bytes, halved every 5 minutes
	Err    float64 `json:"max_overcount"`
}

// status collects the status document.
func (n *node) status() *statusDoc {
	fams := n.families()
	tr := n.ops.traffic
	samples, every := n.ops.history.snapshot()
	d := &statusDoc{
		Name: n.s.name, Version: version, Now: time.Now().UTC(), Ready: n.isReady(),
		TLS: n.ops.certs != nil, HTTP3: n.ops.h3 != nil,
		Interval: every.Seconds(), Samples: samples,
		Requests:   labelValues(fams["outpost_requests_total"], "cache"),
		Bytes:      map[string]int64{"cache": tr.cacheBytes.Load(), "upstream": tr.upstreamBytes.Load()},
		InProgress: tr.inProgress.Load(), Waiting: tr.waiting.Load(),
		Flights: gaugeValue(fams["outpost_flights_in_progress"]),
		Memory:  map[string]float64{},
		Reload:  n.ops.lastReload.Load(),
	}
	if !n.started.IsZero() {
		d.Uptime = math.Round(time.Since(n.started).Seconds())
	}
	for name, mf := range fams {
		if rest, ok := strings.CutPrefix(name, "outpost_memory_"); ok && mf.GetType() == dto.MetricType_GAUGE {
			d.Memory[rest] = gaugeValue(mf)
		}
	}
	ms := n.mem.Stats()
	mem := tierDoc{Name: "memory", Bytes: ms.Bytes, MaxBytes: ms.MaxBytes}
	if mf := fams["outpost_memory_objects"]; mf != nil {
		mem.Objects = ptr(gaugeValue(mf))
	}
	d.Tiers = append(d.Tiers, mem)
	if n.disk != nil {
		ds := n.disk.Stats()
		d.Tiers = append(d.Tiers, tierDoc{Name: "disk", Bytes: ds.Bytes, MaxBytes: ds.MaxBytes, Objects: ptr(float64(ds.Objects))})
	}
	timing := n.ops.upstream.snapshot()
	d.Origins = []originDoc{}
	for _, p := range n.ops.hosts.Load().pools {
		for _, s := range p.pool.Servers() {
			od := originDoc{Pool: p.name, Server: s.URL, Up: s.Up, CheckDown: s.CheckDown, InFlight: s.InFlight, Requests: s.Requests, Failures: s.Failures}
			if !s.EjectedUntil.IsZero() {
				od.EjectedUntil = &s.EjectedUntil
			}
			if t, ok := timing[s.URL]; ok {
				od.LatencyMS, od.LastMS = ptr(t.Mean), ptr(t.Last)
			}
			d.Origins = append(d.Origins, od)
		}
	}
	d.Purges = n.purgesStatus(fams)
	for _, e := range tr.byRequests.top(10) {
		d.TopRequests = append(d.TopRequests, topDoc{URL: e.key, Weight: math.Round(e.weight*10) / 10, Err: math.Round(e.err*10) / 10})
	}
	for _, e := range tr.byBytes.top(10) {
		d.TopBytes = append(d.TopBytes, topDoc{URL: e.key, Weight: math.Round(e.weight), Err: math.Round(e.err)})
	}
	return d
}

// purgesStatus is the purge part of the status: active bans, the bus, and
// the recent purges, newest first.
func (n *node) purgesStatus(fams map[string]*dto.MetricFamily) purgesDoc {
	pd := purgesDoc{ActiveBans: n.bans.Len(), Recent: []purgeDoc{}}
	if n.bus != nil {
		b := &busDoc{
			State:     n.busState(),
			Connected: gaugeValue(fams["outpost_purge_bus_connected"]) > 0,
			Pending:   gaugeValue(fams["outpost_purge_bus_pending"]),
			Published: gaugeValue(fams["outpost_purge_bus_published_total"]),
			Applied:   gaugeValue(fams["outpost_purge_bus_applied_total"]),
		}
		pd.Bus = b
	}
	for _, r := range n.bans.Recent(20) {
		p := purgeDoc{ID: r.ID, Time: r.Time, Soft: r.Soft, Purged: r.Purged}
		for _, b := range r.Bans {
			t := b.Kind.String()
			if b.Value != "" {
				t += " " + b.Value
			}
			p.Targets = append(p.Targets, t)
		}
		pd.Recent = append(pd.Recent, p)
	}
	return pd
}

// busState says where the node is in replaying the purges it missed while
// down (node.replay).
func (n *node) busState() string {
	switch n.replay() {
	case replayDone:
		return "caught_up"
	case replayLate:
		return "late"
	}
	return "replaying"
}

// statusJSON serves GET /status.json.
func (n *node) statusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	if r.URL.Query().Has("pretty") {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(n.status()); err != nil {
		n.log.Debug("status.json", "err", err)
	}
}

// statusPage serves GET /status, the page that polls /status.json.
func (n *node) statusPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing but this page and its JSON: no other origin, no framing.
	h.Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(statusHTML)
}
