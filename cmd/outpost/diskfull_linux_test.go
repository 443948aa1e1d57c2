//go:build linux

package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prlimitFileSize sets RLIMIT_FSIZE of process pid: past max bytes, a write
// to a file fails with EFBIG (Go ignores SIGXFSZ), as writes fail on a full
// disk.
func prlimitFileSize(t *testing.T, pid int, max uint64) {
	t.Helper()
	lim := syscall.Rlimit{Cur: max, Max: max}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_FSIZE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		t.Skipf("prlimit: %v", errno)
	}
}

// TestDiskFullDegradesToMemory: a node whose disk writes fail (a file size
// limit standing in for a full disk) never serves a wrong body, degrades to
// memory only with a metric, stores nothing torn, and after a restart
// without the limit serves every object whole.
func TestDiskFullDegradesToMemory(t *testing.T) {
	cut := diskFull(t, 3)
	t.Logf("full disk: no wrong body; %d responses cut off (see TestDiskFullServesLargeObjectsWhole)", cut)
}

// TestDiskFullServesLargeObjectsWhole: with the disk full, an object that
// cannot be stored is still served whole.
func TestDiskFullServesLargeObjectsWhole(t *testing.T) {
	assert.Zero(t, diskFull(t, 2), "responses cut off")
}

// diskFull runs a node on a disk that fills at 300 KiB a file through
// passes over objects of up to 900 KiB, and returns how many responses
// were cut off.
func diskFull(t *testing.T, passes int) (cut int) {
	m := newMediaOrigin(t, 30, 10<<10, 900<<10, 0)
	dir := t.TempDir()
	p := startProc(t, "--origin", m.URL, "--cache-dir", dir, "--memory", "4MiB")
	prlimitFileSize(t, p.cmd.Process.Pid, 300<<10)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for range passes {
		for i := range m.bodies {
			complete, _, err := m.check(client, p.url, "", i)
			require.NoError(t, err, "a wrong body")
			if !complete {
				cut++
			}
		}
	}
	metrics := scrape(t, p.admin+"/metrics")
	assert.Positive(t, metrics[`outpost_disk_errors_total{op="write"}`], "write failures counted")
	assert.Equal(t, 1.0, metrics["outpost_disk_degraded"], "degraded to memory only")

	// Restarted without the limit: what the disk holds is whole.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.exited
	p.exited <- nil
	p = startProc(t, "--origin", m.URL, "--cache-dir", dir, "--memory", "4MiB")
	for i := range m.bodies {
		complete, _, err := m.check(client, p.url, "", i)
		require.True(t, complete, "object %d after the restart", i)
		require.NoError(t, err)
	}
	return cut
}

// scrape reads a Prometheus text page into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
