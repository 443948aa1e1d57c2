package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "outpost-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binary builds the outpost command once for the tests that run it as a
// separate process (signals, SIGKILL).
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(binDir, "outpost")
	buildOnce.Do(func() {
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return bin
}

// proc is a running `outpost serve` child process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	admin  string // the admin listener's URL
	exited chan error
}

var (
	servingLine = regexp.MustCompile(`msg=serving listen=(\S+)`)
	adminField  = regexp.MustCompile(` admin=(\S+)`)
)

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				if a := adminField.FindStringSubmatch(sc.Text()); a != nil {
					p.admin = "http://" + a[1] // written before addr is sent
				}
				addr <- m[1]
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.exited:
		t.Fatalf("outpost serve exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("outpost serve did not start")
	}
	return p
}

func TestBinaryStopsOnSIGTERM(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "x")
	})
	p := startProc(t, "--origin", o.URL)
	resp, body := fetch(t, p.url+"/a")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "x", body)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		assert.NoError(t, err, "exit status 0 after SIGTERM")
		p.exited <- err // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestKillDuringFillsServesOnlyWholeObjects: SIGKILL a node with a disk
// tier while clients fill it, restart it on the same directory, and check
// that every body it serves matches the origin byte for byte, and that
// every object whose disk copy was written before the kill (asked for
// twice, then the write-behind queue drained) is served from disk after it.
func TestKillDuringFillsServesOnlyWholeObjects(t *testing.T) {
	const objects = 120
	bodies := make([][]byte, objects)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range bodies {
		n := 1 << (10 + r.IntN(12)) // 1 KiB .. 2 MiB
		bodies[i] = make([]byte, n+r.IntN(n))
		for j := range bodies[i] {
			bodies[i][j] = byte(r.Uint32())
		}
	}
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(filepath.Base(r.URL.Path)) // /r<round>/<i>
		if err != nil || i < 0 || i >= objects {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(bodies[i])))
		// Trickle so that kills land mid-body.
		b := bodies[i]
		for len(b) > 0 {
			k := min(len(b), 256<<10)
			if _, err := w.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
		}
	})
	dir := t.TempDir()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	// Each start listens on a new port: keep the cache key's host fixed.
	get := func(url string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Host = "media.example.com"
		return client.Do(req)
	}
	for round := range 3 {
		p := startProc(t, "--origin", o.URL, "--cache-dir", dir, "--memory", "8MiB")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				rr := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := get(fmt.Sprintf("%s/r%d/%d", p.url, round, rr.IntN(objects)))
					if err != nil {
						continue // the node was killed under us
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		time.Sleep(time.Duration(100+r.IntN(400)) * time.Millisecond) // let fills run
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		close(stop)
		wg.Wait()
		<-p.exited
		p.exited <- nil

		// Restart on the same directory: whatever is served is whole. This
		// round's objects were being filled when the kill came; the last
		// round's were all fetched whole after its restart.
		p = startProc(t, "--origin", o.URL, "--cache-dir", dir, "--memory", "8MiB")
		for back := range min(round+1, 2) {
			hits := 0
			for i := range objects {
				resp, err := get(fmt.Sprintf("%s/r%d/%d", p.url, round-back, i))
				require.NoError(t, err)
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err, "object %d after restart", i)
				require.True(t, bytes.Equal(bodies[i], got), "object r%d/%d differs after a kill: %d bytes, want %d", round-back, i, len(got), len(bodies[i]))
				if bytes.Contains([]byte(resp.Header.Get("Cache-Status")), []byte("; hit")) {
					hits++
				}
				if back == 0 {
					// The second request queues the disk copy of an object
					// held in memory; wait until it is written.
					resp, err := get(fmt.Sprintf("%s/r%d/%d", p.url, round, i))
					require.NoError(t, err)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					waitWriteBehind(t, p.admin)
				}
			}
			t.Logf("round %d: %d of %d objects of round %d served from the disk tier", round, hits, objects, round-back)
			if back == 1 {
				assert.Equal(t, objects, hits, "objects stored whole before a kill are served after it")
			}
		}
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		<-p.exited
		p.exited <- nil
	}
}

// waitWriteBehind waits until the node at admin has no object waiting for
// its disk copy.
func waitWriteBehind(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(admin + "/metrics")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		if bytes.Contains(b, []byte("\noutpost_tiered_write_behind_bytes 0\n")) {
			return
		}
		require.True(t, time.Now().Before(deadline), "write-behind queue not drained after 10s")
		time.Sleep(5 * time.Millisecond)
	}
}
