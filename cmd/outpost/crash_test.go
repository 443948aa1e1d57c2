package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mediaOrigin serves n objects of random sizes (seeded) at .../o/<i>, with
// Content-Length, in pieces so that a kill can land mid-body.
type mediaOrigin struct {
	*countingOrigin
	bodies [][]byte
}

func newMediaOrigin(t *testing.T, n, minSize, maxSize int, pause time.Duration) *mediaOrigin {
	t.Helper()
	r := rand.New(rand.NewPCG(9, uint64(n)))
	m := &mediaOrigin{bodies: make([][]byte, n)}
	for i := range m.bodies {
		b := make([]byte, minSize+r.IntN(maxSize-minSize))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		m.bodies[i] = b
	}
	m.countingOrigin = newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(filepath.Base(r.URL.Path)) // .../o/<i>
		if err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(m.bodies[i])))
		b := m.bodies[i]
		for len(b) > 0 {
			k := min(len(b), 128<<10)
			if _, err := w.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
			w.(http.Flusher).Flush()
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	})
	return m
}

// check fetches <prefix>/o/<i> from base and compares the body with the
// origin's. It returns whether the response completed (a kill may cut it),
// whether it was a hit, and an error for a complete body that differs.
func (m *mediaOrigin) check(client *http.Client, base, prefix string, i int) (complete, hit bool, err error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s/o/%d", base, prefix, i), nil)
	req.Host = "media.example" // each start listens on a new port: keep the key fixed
	resp, err := client.Do(req)
	if err != nil {
		return false, false, nil
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, false, nil // cut off: the client sees an error
	}
	hit = strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	if resp.StatusCode != 200 || !bytes.Equal(got, m.bodies[i]) {
		return true, hit, fmt.Errorf("object %d: status %d, %d bytes (want %d), hit %v: body differs", i, resp.StatusCode, len(got), len(m.bodies[i]), hit)
	}
	return true, hit, nil
}

// TestKill9Cycles kills a node with a disk tier by SIGKILL while clients
// fill it, 50 times over (15 under the race detector, which slows the
// clients; OUTPOST_KILL_CYCLES sets it), restarting it on the same
// directory each time: every complete body it serves, before or after a
// kill, hit or miss, is byte for byte the origin's, and the objects it
// stored survive.
func TestKill9Cycles(t *testing.T) {
	cycles := 50
	if raceEnabled {
		cycles = 15
	}
	if os.Getenv("OUTPOST_KILL_CYCLES") != "" {
		cycles, _ = strconv.Atoi(os.Getenv("OUTPOST_KILL_CYCLES"))
	}
	m := newMediaOrigin(t, 24, 1<<10, 1200<<10, time.Millisecond)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(50, 9))
	var verified, hits, corrupt atomic.Int64
	for cycle := range cycles {
		p := startProc(t, "--origin", m.URL, "--cache-dir", dir, "--memory", "4MiB")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				defer client.CloseIdleConnections()
				rr := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					// Half this cycle's objects (cold: fills the kill
					// interrupts), half those of earlier cycles.
					prefix := fmt.Sprintf("/c%d", cycle)
					if cycle > 0 && rr.IntN(2) == 0 {
						prefix = fmt.Sprintf("/c%d", rr.IntN(cycle))
					}
					complete, hit, err := m.check(client, p.url, prefix, rr.IntN(len(m.bodies)))
					if err != nil {
						corrupt.Add(1)
						t.Errorf("cycle %d: %v", cycle, err)
					}
					if complete {
						verified.Add(1)
					}
					if hit {
						hits.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Duration(50+r.IntN(200)) * time.Millisecond) // kill at a random point of the fills
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		<-p.exited
		p.exited <- nil
		close(stop)
		wg.Wait()
	}

	// A last start: everything it serves is whole, much of it from disk.
	p := startProc(t, "--origin", m.URL, "--cache-dir", dir, "--memory", "4MiB")
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	finalHits := 0
	for i := range m.bodies {
		complete, hit, err := m.check(client, p.url, fmt.Sprintf("/c%d", i%cycles), i)
		require.True(t, complete, "object %d", i)
		require.NoError(t, err)
		if hit {
			finalHits++
		}
	}
	t.Logf("%d kill -9 cycles: %d bodies verified byte for byte (%d hits), %d corrupt; after the last, %d of %d objects served from disk",
		cycles, verified.Load()+int64(len(m.bodies)), hits.Load(), corrupt.Load(), finalHits, len(m.bodies))
	assert.Zero(t, corrupt.Load())
	assert.Positive(t, finalHits, "objects stored before the kills survive them")
}

// TestFlippedBytesAreNeverServed damages the disk tier's files while the
// node is stopped (flipped bytes in headers, metadata and bodies, truncated
// and extended files, garbage files) and restarts it: every object it
// serves is the origin's, damaged ones refetched, the others still hits.
func TestFlippedBytesAreNeverServed(t *testing.T) {
	m := newMediaOrigin(t, 16, 100, 1300<<10, 0)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(4, 2))
	damagedTotal := 0
	for round := range 3 {
		tn := startNode(t, "--origin", m.URL, "--cache-dir", dir, "--memory", "2MiB")
		client := &http.Client{Timeout: 10 * time.Second}
		hits := 0
		for i := range m.bodies {
			complete, hit, err := m.check(client, tn.url, "", i)
			require.True(t, complete)
			require.NoError(t, err, "round %d", round)
			if hit {
				hits++
			}
		}
		client.CloseIdleConnections()
		require.NoError(t, tn.stop(t))
		if round > 0 {
			t.Logf("round %d: %d of %d objects still hits after %d damaged files", round, hits, len(m.bodies), damagedTotal)
			assert.Positive(t, hits, "undamaged objects survive")
		}
		if round == 2 {
			break
		}
		var files []string
		require.NoError(t, filepath.WalkDir(filepath.Join(dir, "objects"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return err
		}))
		require.NotEmpty(t, files)
		r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		for i, f := range files[:len(files)/3] {
			damage(t, f, i, r)
			damagedTotal++
		}
		// A file no object wrote.
		garbage := filepath.Join(filepath.Dir(files[0]), strings.Repeat("f", len(filepath.Base(files[0]))))
		require.NoError(t, os.WriteFile(garbage, []byte("not an object"), 0o600))
	}
	t.Logf("%d files damaged over 2 stops: every object served byte for byte", damagedTotal)
}

// damage spoils a cache file in one of several ways, chosen by i.
func damage(t *testing.T, path string, i int, r *rand.Rand) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	switch i % 6 {
	case 0: // a bit in the first 64 bytes (the header)
		b[r.IntN(min(64, len(b)))] ^= 1 << r.IntN(8)
	case 1: // a byte anywhere
		b[r.IntN(len(b))] ^= 0xff
	case 2: // the last byte (the end of the body)
		b[len(b)-1] ^= 0x01
	case 3: // truncated
		b = b[:r.IntN(len(b))]
	case 4: // grown
		b = append(b, "trailing garbage"...)
	case 5: // a run of zeros, as a lost block leaves
		off := r.IntN(len(b))
		clear(b[off:min(len(b), off+4096)])
	}
	require.NoError(t, os.WriteFile(path, b, 0o600))
}
