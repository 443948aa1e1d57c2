package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	var s traceSpec
	fs.StringVar(&s.Kind, "kind", "zipf", "zipf (steady), ohw (one-hit wonders mixed in) or shift (hot set re-drawn)")
	fs.IntVar(&s.Requests, "requests", 200_000, "requests in the trace")
	fs.IntVar(&s.Objects, "objects", 20_000, "objects popularity draws from")
	fs.Float64Var(&s.Alpha, "alpha", 0.9, "Zipf exponent")
	fs.Float64Var(&s.OHW, "ohw", 0.3, "ohw: share of requests for objects asked once")
	fs.IntVar(&s.ShiftAt, "shift-every", 40_000, "shift: requests between re-draws of the hot set")
	median := fs.String("median", "20KiB", "median object size (log-normal)")
	fs.Float64Var(&s.Sigma, "sigma", 1.5, "log-normal shape: standard deviation of ln(size)")
	maxSize := fs.String("max-size", "8MiB", "largest object")
	fs.Uint64Var(&s.Seed, "seed", 1, "random seed")
	out := fs.String("o", "-", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if s.Median, err = parseSize(*median); err != nil {
		return err
	}
	if s.MaxSize, err = parseSize(*maxSize); err != nil {
		return err
	}
	reqs, err := generate(s)
	if err != nil {
		return err
	}
	w := io.Writer(os.Stdout)
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := writeTrace(w, reqs); err != nil {
		return fmt.Errorf("write trace: %w", err)
	}
	st := statsOf(reqs)
	fmt.Fprintf(os.Stderr, "%d requests, %d objects (%d asked once), %s requested, %s distinct; sizes median %s, mean %s, max %s\n",
		st.Requests, st.Objects, st.OneHit, human(st.Bytes), human(st.UniqueBytes), human(st.MedianSize), human(st.MeanSize), human(st.MaxSize))
	return nil
}

func loadTrace(path string) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTrace(f)
}

func runSim(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	trace := fs.String("trace", "", "trace file (offload gen)")
	budgets := fs.String("budget", "64MiB,256MiB", "cache budgets, comma separated")
	policies := fs.String("policies", "lru,belady-size,belady,outpost", "policies: lru, belady-size, belady, outpost (the real memory tier, offline)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reqs, err := loadTrace(*trace)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "budget\tpolicy\tbyte hit %\tobject hit %\torigin bytes\ttime\t")
	for _, b := range strings.Split(*budgets, ",") {
		budget, err := parseSize(b)
		if err != nil {
			return err
		}
		for _, p := range strings.Split(*policies, ",") {
			start := time.Now()
			r, err := simulate(p, reqs, budget)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%.1fs\t\n", human(budget), r.Policy,
				100*r.ByteHitRatio(), 100*r.ObjectHitRatio(), human(r.OriginBytes), time.Since(start).Seconds())
		}
	}
	return tw.Flush()
}

func simulate(policy string, reqs []request, budget int64) (simResult, error) {
	switch policy {
	case "lru":
		return simLRU(reqs, budget), nil
	case "belady-size":
		return simBelady(reqs, budget, true), nil
	case "belady":
		return simBelady(reqs, budget, false), nil
	case "outpost":
		return simMemory(reqs, budget)
	}
	return simResult{}, fmt.Errorf("unknown policy %q", policy)
}

// parseSize reads sizes as Outpost's flags do: a number with B, KiB, MiB,
// GiB, KB, MB or GB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 {
				break
			}
			return n * u.mult, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	return 0, fmt.Errorf("bad size %q (want a number with B, KiB, MiB, GiB, KB, MB or GB)", s)
}

// human formats n bytes with a binary unit.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runReplay(args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	trace := fs.String("trace", "", "trace file (offload gen)")
	var targets, templates listFlag
	fs.Var(&targets, "target", "name=command: a cache to replay through, started with bash; repeatable (placeholders in README.md)")
	fs.Var(&templates, "template", "name=file: a configuration template rendered into the target's {dir}; repeatable")
	budget := fs.String("budget", "64MiB", "memory budget ({memory})")
	disk := fs.String("disk", "0", "disk budget ({disk})")
	conc := fs.Int("concurrency", 16, "clients replaying the trace")
	port := fs.Int("port", 18140, "the cache's listener port ({port}); the admin port ({admin}) is the next one")
	originAddr := fs.String("origin", "127.0.0.1:18139", "the origin's listen address")
	verify := fs.Bool("verify", false, "compare every byte of every body with the origin's")
	scratch := fs.String("scratch", "", "directory for the targets' run directories ({dir}); empty means the system's temporary directory")
	scrapeURL := fs.String("scrape", "", "Prometheus endpoint to read outpost_memory_* from at the end, e.g. http://127.0.0.1:{admin}/metrics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reqs, err := loadTrace(*trace)
	if err != nil {
		return err
	}
	cfg := runConfig{Port: *port, AdminPort: *port + 1, Concurrency: *conc, Verify: *verify, Scrape: *scrapeURL, Scratch: *scratch, Log: os.Stderr}
	if cfg.Budget, err = parseSize(*budget); err != nil {
		return err
	}
	if cfg.Disk, err = parseSize(*disk); err != nil {
		return err
	}
	tgs, err := parseTargets(targets, templates)
	if err != nil {
		return err
	}
	o, err := newOrigin(*originAddr, statsOf(reqs).MaxSize)
	if err != nil {
		return err
	}
	defer o.Close()
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tbyte hit %\tobject hit %\torigin reqs\torigin bytes\twall\tCPU\tpeak RSS\tRSS/budget\terrors\t")
	for _, tg := range tgs {
		r, err := replay(context.Background(), reqs, tg, o, cfg)
		if err != nil {
			return err
		}
		printReplay(tw, r, cfg.Budget)
		tw.Flush()
		if r.Metrics != "" {
			fmt.Fprintln(os.Stderr, r.Metrics)
		}
	}
	return nil
}

func printReplay(w io.Writer, r replayResult, budget int64) {
	fmt.Fprintf(w, "%s\t%.1f\t%.1f\t%d\t%s\t%.1fs\t%.1fs\t%s\t%.2f\t%d\t\n", r.Target, 100*r.ByteHitRatio(), 100*r.ObjectHitRatio(),
		r.OriginRequests, human(r.OriginBytes), r.Wall.Seconds(), r.CPU.Seconds(), human(r.PeakRSS), float64(r.PeakRSS)/float64(budget), r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(os.Stderr, "%s: first error: %s\n", r.Target, r.FirstError)
	}
}

func parseTargets(targets, templates []string) ([]target, error) {
	var out []target
	for _, t := range targets {
		name, cmd, ok := strings.Cut(t, "=")
		if !ok || name == "" || cmd == "" {
			return nil, fmt.Errorf("-target %q: want name=command", t)
		}
		out = append(out, target{Name: name, Command: cmd})
	}
	for _, t := range templates {
		name, file, ok := strings.Cut(t, "=")
		i := slices.IndexFunc(out, func(tg target) bool { return tg.Name == name })
		if !ok || i < 0 {
			return nil, fmt.Errorf("-template %q: want name=file for a -target name", t)
		}
		out[i].Templates = append(out[i].Templates, file)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no -target")
	}
	return out, nil
}
