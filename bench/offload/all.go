package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runAll generates the three traces, simulates the offline bounds and
// replays each trace through Outpost (memory only, and memory + disk) and
// any peers asked for, at each budget, and writes a report.
func runAll(args []string) error {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	out := fs.String("out", "offload-results", "directory for traces, run directories and the report")
	outpost := fs.String("outpost", "", "the outpost binary (go build -o bin/outpost ./cmd/outpost)")
	budgets := fs.String("budgets", "64MiB,256MiB", "memory budgets, comma separated")
	disk := fs.String("disk", "same", `disk budget for the "+ disk" runs: a size, or "same" as the memory budget`)
	kinds := fs.String("traces", "zipf,ohw,shift", "trace kinds")
	requests := fs.Int("requests", 200_000, "requests per trace")
	objects := fs.Int("objects", 20_000, "objects per trace")
	peers := fs.String("peers", "", "peers to replay too: nginx, varnish, ats (comma separated; skipped when not installed)")
	conf := fs.String("conf", "bench/offload/conf", "directory of the peers' configuration templates")
	conc := fs.Int("concurrency", 16, "clients replaying each trace")
	port := fs.Int("port", 18140, "the caches' listener port; the admin port is the next one")
	originAddr := fs.String("origin", "127.0.0.1:18139", "the origin's listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *outpost == "" {
		return fmt.Errorf("-outpost: the binary to replay through is required")
	}
	bin, err := filepath.Abs(*outpost)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(*out, "runs"), 0o755); err != nil {
		return err
	}
	report, err := os.Create(filepath.Join(*out, "report.md"))
	if err != nil {
		return err
	}
	defer report.Close()
	w := io.MultiWriter(os.Stdout, report)
	fmt.Fprintf(w, "# Offload replay, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "%s; %d clients; Outpost %s\n\n", machine(), *conc, bin)

	for _, kind := range strings.Split(*kinds, ",") {
		path := filepath.Join(*out, fmt.Sprintf("%s-%d-%d.trace", kind, *requests, *objects))
		if _, err := os.Stat(path); err != nil {
			reqs, err := generate(traceSpec{Kind: kind, Requests: *requests, Objects: *objects})
			if err != nil {
				return err
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			err = writeTrace(f, reqs)
			f.Close()
			if err != nil {
				return err
			}
		}
		reqs, err := loadTrace(path)
		if err != nil {
			return err
		}
		st := statsOf(reqs)
		fmt.Fprintf(w, "## %s: %d requests, %d objects (%d asked once), %s requested, %s distinct\n\n",
			kind, st.Requests, st.Objects, st.OneHit, human(st.Bytes), human(st.UniqueBytes))
		o, err := newOrigin(*originAddr, st.MaxSize)
		if err != nil {
			return err
		}
		for _, b := range strings.Split(*budgets, ",") {
			budget, err := parseSize(b)
			if err != nil {
				o.Close()
				return err
			}
			diskBytes := budget
			if *disk != "same" {
				if diskBytes, err = parseSize(*disk); err != nil {
					o.Close()
					return err
				}
			}
			if err := allBudget(w, reqs, o, bin, *conf, *peers, runConfig{
				Budget: budget, Disk: diskBytes, Port: *port, AdminPort: *port + 1, Concurrency: *conc,
				Scratch: filepath.Join(*out, "runs"), Scrape: "http://127.0.0.1:{admin}/metrics", Log: io.Discard,
			}); err != nil {
				o.Close()
				return err
			}
		}
		o.Close()
	}
	return nil
}

// allBudget writes the table of one trace at one budget.
func allBudget(w io.Writer, reqs []request, o *origin, bin, conf, peers string, cfg runConfig) error {
	fmt.Fprintf(w, "### memory %s, disk %s\n\n", human(cfg.Budget), human(cfg.Disk))
	fmt.Fprintln(w, "| cache | byte hit % | object hit % | wall | CPU | peak RSS | RSS ÷ memory |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, p := range []string{"lru", "belady-size", "belady"} {
		r, err := simulate(p, reqs, cfg.Budget)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "| %s (offline, %s) | %.1f | %.1f | | | | |\n", p, human(cfg.Budget), 100*r.ByteHitRatio(), 100*r.ObjectHitRatio())
	}
	serve := bin + " serve --listen 127.0.0.1:{port} --admin 127.0.0.1:{admin} --origin {origin} --memory {memory}"
	targets := []target{
		{Name: "outpost memory", Command: serve},
		{Name: "outpost memory+disk", Command: serve + " --cache-dir {dir}/cache --disk {disk}"},
	}
	for _, p := range strings.Split(peers, ",") {
		switch p {
		case "":
		case "nginx":
			targets = append(targets, target{Name: "nginx proxy_cache (disk)", Command: "nginx -p {dir} -c {dir}/nginx.conf",
				Templates: []string{filepath.Join(conf, "nginx.conf.tmpl")}})
		case "varnish":
			targets = append(targets, target{Name: "varnish malloc", Command: "sh {dir}/varnish.sh",
				Templates: []string{filepath.Join(conf, "varnish.sh.tmpl")}})
		case "ats":
			var tmpls []string
			for _, f := range []string{"runroot.yaml", "records.config", "remap.config", "storage.config", "ip_allow.yaml", "start.sh"} {
				tmpls = append(tmpls, filepath.Join(conf, "ats", f+".tmpl"))
			}
			targets = append(targets, target{Name: "traffic server (ram+disk)", Command: "sh {dir}/start.sh", Templates: tmpls})
		default:
			return fmt.Errorf("unknown peer %q: want nginx, varnish or ats", p)
		}
	}
	for _, tg := range targets {
		prog := strings.Fields(tg.Command)[0]
		if prog == "sh" {
			prog = map[string]string{"varnish malloc": "varnishd", "traffic server (ram+disk)": "traffic_server"}[tg.Name]
		}
		if _, err := exec.LookPath(prog); err != nil {
			fmt.Fprintf(w, "| %s | not installed | | | | | |\n", tg.Name)
			continue
		}
		c := cfg
		if !strings.HasPrefix(tg.Name, "outpost") {
			c.Scrape = ""
		}
		r, err := replay(context.Background(), reqs, tg, o, c)
		if err != nil {
			fmt.Fprintf(w, "| %s | failed: %v | | | | | |\n", tg.Name, err)
			continue
		}
		note := ""
		if r.Errors > 0 {
			note = fmt.Sprintf(" (%d errors: %s)", r.Errors, r.FirstError)
		}
		fmt.Fprintf(w, "| %s%s | %.1f | %.1f | %.1fs | %.1fs | %s | %.2f |\n", tg.Name, note, 100*r.ByteHitRatio(), 100*r.ObjectHitRatio(),
			r.Wall.Seconds(), r.CPU.Seconds(), human(r.PeakRSS), float64(r.PeakRSS)/float64(cfg.Budget))
	}
	fmt.Fprintf(w, "\nRSS target 1.15 × memory + 64 MiB = %s (%.2f × memory).\n\n", human(cfg.Budget*115/100+64<<20), float64(cfg.Budget*115/100+64<<20)/float64(cfg.Budget))
	return nil
}

// machine describes where the replay ran.
func machine() string {
	out, err := exec.Command("nproc").Output()
	cpus := strings.TrimSpace(string(out))
	if err != nil {
		cpus = "?"
	}
	return fmt.Sprintf("%s CPUs", cpus)
}
