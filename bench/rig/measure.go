package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times.
const clockTick = 100

// procStat reads a process's parent and its CPU seconds (user + system,
// all threads, plus children it has waited for).
func procStat(pid int) (ppid int, cpu float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, errors.New("short stat")
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, k := range f[11:15] { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(k, 64)
		cpu += v / clockTick
	}
	return ppid, cpu, nil
}

// tree returns roots and all their descendants.
func tree(roots []int) []int {
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if ppid, _, err := procStat(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := append([]int(nil), roots...)
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func treeCPU(pids []int) float64 {
	var sum float64
	for _, p := range pids {
		if _, cpu, err := procStat(p); err == nil {
			sum += cpu
		}
	}
	return sum
}

func parsePIDs(args []string) ([]int, error) {
	var out []int
	for _, a := range args {
		for _, f := range strings.Fields(a) {
			p, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("bad pid %q", f)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// cmdPIDs prints the PIDs given and their descendants.
func cmdPIDs(args []string) error {
	roots, err := parsePIDs(args)
	if err != nil {
		return err
	}
	for _, p := range tree(roots) {
		fmt.Print(p, " ")
	}
	fmt.Println()
	return nil
}

// run is one measured run: one JSON line in the runs file.
type run struct {
	Round    int     `json:"round"`
	Workload string  `json:"workload"`
	Target   string  `json:"target"`
	Requests float64 `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms,omitempty"`
	P99      float64 `json:"p99_ms,omitempty"`
	Max      float64 `json:"max_ms,omitempty"`
	Min      float64 `json:"min_ms,omitempty"`
	Errors   float64 `json:"errors"`
	Wall     float64 `json:"wall_s"`
	ServerS  float64 `json:"server_cpu_s"` // CPU the server's processes used during the run
	ClientS  float64 `json:"client_cpu_s"` // CPU the load generator used
	Origin   int64   `json:"origin"`       // origin requests during the run (0: hits only)
	Fetches  float64 `json:"origin_fetches,omitempty"`
	Resumed  float64 `json:"resumed,omitempty"`
	Load     float64 `json:"loadavg"` // the machine's 1-minute load average at the start
}

// cmdMeasure runs a load generator against a server and appends a run:
// what the generator reported, the server's CPU time (its process trees,
// read from /proc before and after) and the origin's requests meanwhile.
// It understands wrk with bench/wrk.lua, h2load, and rig's own clients.
func cmdMeasure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	out := fs.String("out", "", "runs file (JSON lines)")
	raw := fs.String("raw", "", "where to keep the generator's output")
	r := run{}
	fs.IntVar(&r.Round, "round", 0, "round")
	fs.StringVar(&r.Workload, "workload", "", "workload")
	fs.StringVar(&r.Target, "target", "", "target")
	pidList := fs.String("pids", "", "the server's root PIDs")
	origin := fs.String("origin", "", "origin base URL")
	timeout := fs.Duration("timeout", 2*time.Minute, "kill the generator after this (a server that stops answering)")
	fs.Parse(args)
	if fs.NArg() == 0 || *out == "" {
		return errors.New("usage: rig measure -out FILE [flags] -- CMD ARGS")
	}
	roots, err := parsePIDs([]string{*pidList})
	if err != nil {
		return err
	}
	pids := tree(roots)
	var o0 int64
	if *origin != "" {
		if o0, err = originCount(*origin, ""); err != nil {
			return err
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Load, _ = strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	}
	cpu0 := treeCPU(pids)
	t0 := time.Now()
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	runErr := cmd.Run()
	r.Wall = time.Since(t0).Seconds()
	r.ServerS = treeCPU(pids) - cpu0
	if cmd.ProcessState != nil {
		r.ClientS = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if *origin != "" {
		o1, err := originCount(*origin, "")
		if err != nil {
			return err
		}
		r.Origin = o1 - o0
	}
	if *raw != "" {
		os.WriteFile(*raw, buf.Bytes(), 0o644)
	}
	if runErr != nil {
		return fmt.Errorf("%s: %v\n%s", fs.Arg(0), runErr, tail(buf.Bytes()))
	}
	if err := parseOutput(&r, buf.String()); err != nil {
		return fmt.Errorf("%s: %v\n%s", fs.Arg(0), err, tail(buf.Bytes()))
	}
	line, _ := json.Marshal(r)
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s\n", line)
	fmt.Printf("%-6s %-12s %-14s %9.0f req/s  server CPU %3.0f%%  per core %9.0f  p99 %6.2f ms  errors %.0f  origin %d\n",
		fmt.Sprint("r", r.Round), r.Workload, r.Target, r.RPS, 100*r.ServerS/r.Wall, r.RPS/(r.ServerS/r.Wall), r.P99, r.Errors, r.Origin)
	return err
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

var (
	rigLine     = regexp.MustCompile(`(?m)^RIG (.*)$`)
	h2Finished  = regexp.MustCompile(`finished in ([0-9.]+)s, ([0-9.]+) req/s`)
	h2Requests  = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status    = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2ReqTimeMs = regexp.MustCompile(`time for request:\s+\S+\s+(\S+)\s+(\S+)`)
)

// parseOutput fills r from "RIG key=value ..." lines (bench/wrk.lua and
// rig's clients) or from h2load's report.
func parseOutput(r *run, out string) error {
	if m := rigLine.FindStringSubmatch(out); m != nil {
		kv := map[string]float64{}
		for _, f := range strings.Fields(m[1]) {
			k, v, _ := strings.Cut(f, "=")
			kv[k], _ = strconv.ParseFloat(v, 64)
		}
		r.Requests, r.Errors = kv["requests"], kv["errors"]
		r.P50, r.P99, r.Max, r.Min = kv["p50_ms"], kv["p99_ms"], kv["max_ms"], kv["min_ms"]
		r.Fetches, r.Resumed = kv["origin_fetches"], kv["resumed"]
		r.RPS = kv["rps"]
		if r.RPS == 0 && kv["secs"] > 0 {
			r.RPS = r.Requests / kv["secs"]
		}
		return nil
	}
	m := h2Finished.FindStringSubmatch(out)
	q := h2Requests.FindStringSubmatch(out)
	if m == nil || q == nil {
		return errors.New("no RIG line and no h2load report in the output")
	}
	r.RPS, _ = strconv.ParseFloat(m[2], 64)
	r.Requests, _ = strconv.ParseFloat(q[2], 64)
	for _, s := range q[3:] {
		v, _ := strconv.ParseFloat(s, 64)
		r.Errors += v
	}
	if s := h2Status.FindStringSubmatch(out); s != nil {
		for _, v := range s[3:] {
			n, _ := strconv.ParseFloat(v, 64)
			r.Errors += n
		}
	}
	if t := h2ReqTimeMs.FindStringSubmatch(out); t != nil {
		r.Max = h2Millis(t[2])
	}
	return nil
}

// h2Millis reads h2load's durations ("12.34ms", "1.20s", "850us").
func h2Millis(s string) float64 {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 0.001}, {"ms", 1}, {"s", 1000}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.ms
		}
	}
	return 0
}
