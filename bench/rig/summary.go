package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Workloads and targets in the order the tables show them.
var (
	plainWorkloads = []string{"1k", "many", "64k", "1m"}
	plainTargets   = []string{"outpost", "compare", "nginx", "ats", "varnish", "nginx-static", "bare"}
	tlsWorkloads   = []string{"h2-1k", "h2-64k", "h1s-1k", "h1s-64k", "hs-full", "hs-resumed"}
	tlsTargets     = []string{"bare-tls", "outpost-tls", "compare-tls", "nginx-tls"}
	workloadTitle  = map[string]string{
		"1k": "1 KiB hit, one key", "many": "1 KiB hits over 10,000 keys", "64k": "64 KiB hit", "1m": "1 MiB hit",
		"h2-1k": "HTTP/2, 1 KiB hit", "h2-64k": "HTTP/2, 64 KiB hit", "h1s-1k": "HTTPS HTTP/1.1, 1 KiB hit",
		"h1s-64k": "HTTPS HTTP/1.1, 64 KiB hit", "hs-full": "full TLS handshakes", "hs-resumed": "resumed TLS handshakes",
	}
)

// perCore is requests per second of server CPU: what one fully used core
// of this server would serve.
func (r run) perCore() float64 {
	if r.ServerS <= 0 {
		return 0
	}
	return r.Requests / r.ServerS
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cmdSummary prints the tables of a results file.
func cmdSummary(args []string) error {
	fs := flag.NewFlagSet("summary", flag.ExitOnError)
	file := fs.String("runs", "", "runs file written by rig measure")
	fs.Parse(args)
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	runs := map[[2]string][]run{} // workload, target
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r run
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		k := [2]string{r.Workload, r.Target}
		runs[k] = append(runs[k], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	ratioTable(runs, "Plain HTTP/1.1 hits (wrk): requests per server core ÷ the bare Go server's (xCeilC)", plainWorkloads, plainTargets, "bare", true)
	ratioTable(runs, "HTTPS (h2load; handshakes with rig): requests per server core ÷ nginx's", tlsWorkloads, tlsTargets, "nginx-tls", false)
	detail(runs)
	coalesceTable(runs)
	return nil
}

// ratio is the median over rounds of target's per-core rate divided by
// ref's in the same round.
func ratio(runs map[[2]string][]run, wl, target, ref string) (float64, bool) {
	byRound := map[int]float64{}
	for _, r := range runs[[2]string{wl, ref}] {
		byRound[r.Round] = r.perCore()
	}
	var rs []float64
	for _, r := range runs[[2]string{wl, target}] {
		if b := byRound[r.Round]; b > 0 {
			rs = append(rs, r.perCore()/b)
		}
	}
	return median(rs), len(rs) > 0
}

func ratioTable(runs map[[2]string][]run, title string, wls, targets []string, ref string, p99 bool) {
	var cols []string
	for _, t := range targets {
		for _, wl := range wls {
			if len(runs[[2]string{wl, t}]) > 0 {
				cols = append(cols, t)
				break
			}
		}
	}
	if len(cols) == 0 {
		return
	}
	fmt.Printf("\n%s\n\n| workload | %s |\n|---|%s\n", title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, wl := range wls {
		cells, any := []string{}, false
		for _, t := range cols {
			v, ok := ratio(runs, wl, t, ref)
			any = any || ok
			cells = append(cells, cell(ok, "%.2f", v))
		}
		if any {
			fmt.Printf("| %s | %s |\n", workloadTitle[wl], strings.Join(cells, " | "))
		}
	}
	if p99 {
		cells, any := []string{}, false
		for _, t := range cols {
			var ps []float64
			for _, r := range runs[[2]string{"1k", t}] {
				ps = append(ps, r.P99)
			}
			any = any || len(ps) > 0
			cells = append(cells, cell(len(ps) > 0, "%.1f", median(ps)))
		}
		if any {
			fmt.Printf("| p99 ms, 1 KiB | %s |\n", strings.Join(cells, " | "))
		}
	}
}

func cell(ok bool, format string, v float64) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// detail prints every cell's medians, so a ratio can be traced to its
// numbers: the machine's absolute numbers move between runs, ratios less.
func detail(runs map[[2]string][]run) {
	fmt.Printf("\nDetail (medians over rounds; per core = requests ÷ server CPU seconds)\n\n")
	fmt.Printf("%-11s %-13s %5s %10s %10s %7s %8s %8s %7s %7s %6s  %s\n",
		"workload", "target", "runs", "req/s", "per core", "srvCPU", "p50 ms", "p99 ms", "clnCPU", "errors", "origin", "note")
	starved := 0
	for _, wl := range append(slices.Clone(plainWorkloads), tlsWorkloads...) {
		for _, t := range append(slices.Clone(plainTargets), tlsTargets...) {
			rs := runs[[2]string{wl, t}]
			if len(rs) == 0 {
				continue
			}
			col := func(f func(run) float64) float64 {
				var xs []float64
				for _, r := range rs {
					xs = append(xs, f(r))
				}
				return median(xs)
			}
			var errs float64
			var origin int64
			for _, r := range rs {
				errs += r.Errors
				origin += r.Origin
			}
			srv := col(func(r run) float64 { return 100 * r.ServerS / r.Wall })
			cln := col(func(r run) float64 { return 100 * r.ClientS / r.Wall })
			note := ""
			switch {
			case cln >= 90 && srv < 90:
				note = "client-bound"
			case srv < 50:
				note = "starved"
				starved++
			}
			fmt.Printf("%-11s %-13s %5d %10.0f %10.0f %6.0f%% %8.2f %8.2f %6.0f%% %7.0f %6d  %s\n", wl, t, len(rs),
				col(func(r run) float64 { return r.RPS }), col(run.perCore), srv,
				col(func(r run) float64 { return r.P50 }), col(func(r run) float64 { return r.P99 }),
				cln, errs, origin, note)
		}
	}
	fmt.Println("srvCPU, clnCPU: CPU of the server's processes and of the load generator, % of one core.")
	fmt.Println("errors: failed requests or non-2xx answers; origin: origin requests during hit runs (0 = hits only).")
	fmt.Println("client-bound: the generator was saturated, not the server: compare per core.")
	if starved > 0 {
		fmt.Printf("starved (%d cells): neither the server nor the generator got half a core: other processes held the CPUs.\n", starved)
		fmt.Println("  A server woken for little work does more per request; rerun on a quieter machine before trusting those ratios.")
	}
}

func coalesceTable(runs map[[2]string][]run) {
	var targets []string
	for k := range runs {
		if k[0] == "coalesce" {
			targets = append(targets, k[1])
		}
	}
	if len(targets) == 0 {
		return
	}
	slices.Sort(targets)
	fmt.Printf("\nCoalescing: 200 clients GET one cold 64 KiB object, origin answers after 500 ms\n\n")
	fmt.Printf("%-13s %-22s %8s %8s %8s %6s\n", "target", "origin fetches/run", "min ms", "p50 ms", "max ms", "errors")
	for _, t := range targets {
		rs := runs[[2]string{"coalesce", t}]
		var fetches []string
		var mins, p50s, maxs []float64
		var errs float64
		for _, r := range rs {
			fetches = append(fetches, fmt.Sprint(r.Fetches))
			mins, p50s, maxs = append(mins, r.Min), append(p50s, r.P50), append(maxs, r.Max)
			errs += r.Errors
		}
		fmt.Printf("%-13s %-22s %8.0f %8.0f %8.0f %6.0f\n", t, strings.Join(fetches, ","), median(mins), median(p50s), median(maxs), errs)
	}
	fmt.Println("min/p50/max: medians over runs of each run's client latency, request written to last byte read.")
}
