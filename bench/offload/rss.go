package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// rssSampler records the peak resident memory of a process and its
// descendants together (nginx, Varnish and Traffic Server run several),
// sampled from /proc, and for a single process also its own high-water mark
// (VmHWM), which catches peaks between samples.
type rssSampler struct {
	done chan struct{}
	peak chan int64
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		var peak int64
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			pids := processTree(pid)
			var sum, hwm int64
			for _, p := range pids {
				rss, h := procMemory(p)
				sum += rss
				hwm = max(hwm, h)
			}
			peak = max(peak, sum)
			if len(pids) == 1 {
				peak = max(peak, hwm)
			}
			select {
			case <-s.done:
				s.peak <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in bytes (0 without /proc).
func (s *rssSampler) stop() int64 {
	close(s.done)
	return <-s.peak
}

// procMemory returns VmRSS and VmHWM of pid in bytes.
func procMemory(pid int) (rss, hwm int64) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, field := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if v, ok := strings.CutPrefix(line, field.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				*field.dst = kb << 10
			}
		}
	}
	return rss, hwm
}

// processTree returns pid and its descendants.
func processTree(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(e.Name())
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after the command
// name (state, ppid, ...), or nil when it cannot be read. The name comes
// in parentheses and may itself hold spaces and parentheses.
func statFields(pid string) []string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// treeCPU returns the CPU time (user and system, in clock ticks of 10 ms
// on Linux) used by pid and its descendants, including children they
// reaped.
func treeCPU(pid int) time.Duration {
	var ticks int64
	for _, p := range processTree(pid) {
		f := statFields(strconv.Itoa(p))
		if len(f) < 15 {
			continue
		}
		for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
