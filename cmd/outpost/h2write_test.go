package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recWriter records the writes it receives; block, while set, holds them.
type recWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	block  chan struct{} // nil: no wait
	err    error
}

func (w *recWriter) Write(p []byte) (int, error) {
	if w.block != nil {
		<-w.block
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes++
	return w.buf.Write(p)
}

func (w *recWriter) snapshot() ([]byte, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes()), w.writes
}

// Bytes go out in order, whole, and writes made while one is being sent
// are sent together.
func TestCoalescerOrderAndBatching(t *testing.T) {
	w := &recWriter{block: make(chan struct{})}
	c := newCoalescer(w)
	var want bytes.Buffer
	for i := range 1000 { // more than two buffers' worth: Write waits for room
		p := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		want.Write(p)
		if i == 10 {
			close(w.block) // the first send was held until now
		}
		n, err := c.Write(p)
		require.NoError(t, err)
		require.Equal(t, len(p), n)
	}
	c.close()
	got, writes := w.snapshot()
	require.Equal(t, want.Bytes(), got)
	require.Less(t, writes, 100, "writes coalesced")
}

// A failed send fails the Writes after it; close does not wait for a
// connection that takes nothing.
func TestCoalescerErrorAndStuckClose(t *testing.T) {
	w := &recWriter{err: errors.New("broken pipe")}
	c := newCoalescer(w)
	c.Write([]byte("a"))
	require.Eventually(t, func() bool { _, err := c.Write([]byte("b")); return err != nil }, time.Second, time.Millisecond)

	stuck := &recWriter{block: make(chan struct{})}
	c = newCoalescer(stuck)
	c.Write([]byte("never sent"))
	start := time.Now()
	c.close()
	require.GreaterOrEqual(t, time.Since(start), h2CloseWait)
	_, err := c.Write([]byte("after close"))
	require.ErrorIs(t, err, net.ErrClosed)
	close(stuck.block)
}

// A Write waiting for room is released by close.
func TestCoalescerCloseReleasesWriter(t *testing.T) {
	w := &recWriter{block: make(chan struct{})}
	c := newCoalescer(w)
	done := make(chan error)
	go func() {
		p := make([]byte, 1<<10)
		for {
			if _, err := c.Write(p); err != nil { // fills both buffers, then waits
				done <- err
				return
			}
		}
	}()
	time.Sleep(10 * time.Millisecond)
	go c.close()
	select {
	case err := <-done:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(h2CloseWait / 2):
		t.Fatal("a Write waiting for room outlived close")
	}
	close(w.block)
}

// BenchmarkCoalescer: what handing the HTTP/2 server's flushes (a HEADERS
// frame, then a 1 KiB DATA frame) to the coalescer costs, beside writing
// them straight through.
func BenchmarkCoalescer(b *testing.B) {
	headers, data := make([]byte, 60), make([]byte, 9+1024)
	for _, coalesced := range []bool{false, true} {
		name := "direct"
		if coalesced {
			name = "coalesced"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var w io.Writer = io.Discard
			var c *coalescer
			if coalesced {
				c = newCoalescer(io.Discard)
				w = c
			}
			for b.Loop() {
				w.Write(headers)
				w.Write(data)
			}
			if c != nil {
				c.close()
			}
		})
	}
}
