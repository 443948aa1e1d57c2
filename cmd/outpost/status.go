package main

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/purge"
)

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Name}} · Outpost status</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1e293b}table{border-collapse:collapse}
td,th{padding:.2rem .8rem;border-bottom:1px solid #cbd5e1;text-align:left}.down{color:#b91c1c}</style></head>
<body><h1>{{.Name}}</h1>
<p>Up {{.Uptime}} · ready: {{.Ready}}</p>
{{with .Bus}}<p>Purge bus: {{.}}</p>{{end}}
<h2>Requests</h2>
<table><tr><th>answer</th><th>count</th></tr>
{{range .Requests}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>{{end}}
<tr><th>hit ratio</th><th>{{printf "%.1f%%" .HitRatio}}</th></tr></table>
<h2>Storage</h2>
<table><tr><th>tier</th><th>used</th><th>budget</th><th>objects</th></tr>
{{range .Tiers}}<tr><td>{{.Name}}</td><td>{{.Used}}</td><td>{{.Max}}</td><td>{{.Objects}}</td></tr>{{end}}</table>
<h2>Origins</h2>
<table><tr><th>pool</th><th>server</th><th>state</th><th>in flight</th><th>requests</th><th>failures</th></tr>
{{range .Origins}}<tr{{if not .Up}} class="down"{{end}}><td>{{.Pool}}</td><td>{{.URL}}</td><td>{{if .Up}}up{{else}}down{{end}}</td><td>{{.InFlight}}</td><td>{{.Requests}}</td><td>{{.Failures}}</td></tr>{{end}}</table>
<h2>Recent purges</h2>
<table><tr><th>time</th><th>id</th><th>soft</th><th>bans</th><th>purged</th></tr>
{{range .Purges}}<tr><td>{{.Time.Format "2006-01-02 15:04:05"}}</td><td>{{.ID}}</td><td>{{.Soft}}</td><td>{{len .Bans}}</td><td>{{.Purged}}</td></tr>{{end}}</table>
<p>Active bans: {{.ActiveBans}}</p>
</body></html>
`))

type statusData struct {
	Name     string
	Uptime   time.Duration
	Ready    bool
	Bus      string // where the replay of missed purges is; empty without a bus
	Requests []struct {
		Name  string
		Count float64
	}
	HitRatio float64
	Tiers    []struct {
		Name, Used, Max string
		Objects         string
	}
	Origins []struct {
		Pool string
		origin.ServerStatus
	}
	Purges     []purge.Record
	ActiveBans int
}

var started = time.Now()

// status serves GET /status: a human page with the hit ratio, tier usage,
// origin health and recent purges.
func (n *node) status(w http.ResponseWriter, r *http.Request) {
	d := statusData{Name: n.s.name, Uptime: time.Since(started).Round(time.Second), Ready: n.isReady(), ActiveBans: n.bans.Len(), Purges: n.bans.Recent(20)}
	switch n.replay() {
	case replayDone:
		d.Bus = "caught up with the fleet's purges"
	case replayPending:
		d.Bus = "replaying the purges missed while down: the cache is not used (every request is fetched through) until done"
	case replayLate:
		d.Bus = "purges missed while down not replayed yet; serving from the cache anyway (purge_bus.ready_timeout)"
	}
	var hits, total float64
	if mfs, err := n.reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() != "outpost_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue()
				name := m.GetLabel()[0].GetValue()
				d.Requests = append(d.Requests, struct {
					Name  string
					Count float64
				}{name, v})
				total += v
				if name == "hit" || name == "stale" {
					hits += v
				}
			}
		}
	}
	if total > 0 {
		d.HitRatio = 100 * hits / total
	}
	ms := n.mem.Stats()
	d.Tiers = append(d.Tiers, struct {
		Name, Used, Max string
		Objects         string
	}{"memory", humanSize(ms.Bytes), humanSize(ms.MaxBytes), "-"})
	if n.disk != nil {
		ds := n.disk.Stats()
		d.Tiers = append(d.Tiers, struct {
			Name, Used, Max string
			Objects         string
		}{"disk", humanSize(ds.Bytes), humanSize(ds.MaxBytes), fmt.Sprint(ds.Objects)})
	}
	for _, p := range n.pools {
		for _, s := range p.pool.Servers() {
			d.Origins = append(d.Origins, struct {
				Pool string
				origin.ServerStatus
			}{p.name, s})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, d); err != nil {
		n.log.Warn("status page", "err", err)
	}
}

// humanSize renders bytes with one decimal in the largest fitting binary unit.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
