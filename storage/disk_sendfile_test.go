package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingListener hands out connections that record what net/http passes
// to their ReadFrom before passing it on to (*net.TCPConn).ReadFrom, which
// copies an *os.File (bare or in an *io.LimitedReader) with sendfile(2)
// (net/sendfile.go). Seeing the file arrive there is the evidence that a
// copy took the sendfile path, short of tracing system calls.
type recordingListener struct {
	net.Listener
	mu   sync.Mutex
	srcs []string // one description per ReadFrom call
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

func (l *recordingListener) sources() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.srcs...)
}

type recordingConn struct {
	*net.TCPConn
	l *recordingListener
}

func (c *recordingConn) ReadFrom(r io.Reader) (int64, error) {
	desc := fmt.Sprintf("%T", r)
	if lr, ok := r.(*io.LimitedReader); ok {
		desc = fmt.Sprintf("*io.LimitedReader{%T}", lr.R)
	}
	c.l.mu.Lock()
	c.l.srcs = append(c.l.srcs, desc)
	c.l.mu.Unlock()
	return c.TCPConn.ReadFrom(r)
}

// writerOnly hides the ReadFrom of the writer it wraps.
type writerOnly struct{ io.Writer }

// rangeServer serves tier objects: GET /key?off=N&n=M writes M bytes from
// offset N with WriteRange. With header=1 it writes the response header
// first (as http.ServeContent does), otherwise net/http sniffs the first
// 512 bytes before handing the rest to ReadFrom. With copy=1 it hides the
// ResponseWriter's ReadFrom, so the bytes go through a buffer.
func rangeServer(t testing.TB, tier storage.Tier) (*httptest.Server, *recordingListener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := tier.Get(r.Context(), r.URL.Path[1:])
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer o.Close()
		off, _ := strconv.ParseInt(r.URL.Query().Get("off"), 10, 64)
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			n = o.Meta().Size - off
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if r.URL.Query().Get("header") == "1" {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
		}
		var dst io.Writer = w
		if r.URL.Query().Get("copy") == "1" {
			dst = writerOnly{w} // hides ReadFrom: the copy goes through user space
		}
		if _, err := o.(storage.RangeWriter).WriteRange(dst, off, n); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	l := &recordingListener{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, l
}

func TestDiskWriteRangeUsesSendfile(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	body := randomBody(3, 3*chunk+1234)
	store(t, d, meta("video", int64(len(body))), body)
	srv, l := rangeServer(t, d)
	client := srv.Client()

	sendfile := []string{"*io.LimitedReader{*os.File}"}
	tests := []struct {
		name         string
		giveQuery    string
		wantOff      int
		wantLen      int
		wantReadFrom []string
	}{
		{"whole body, header written", "header=1", 0, len(body), sendfile},
		{"whole body, header sniffed", "", 0, len(body), sendfile},
		{"range in the middle", "header=1&off=1000000&n=2000000", 1_000_000, 2_000_000, sendfile},
		{"sniffed range", "off=5&n=700000", 5, 700_000, sendfile},
		// net/http copies up to 512 bytes itself before it flushes the
		// header: a range that short never reaches ReadFrom.
		{"range of the last bytes", "header=1&off=" + strconv.Itoa(len(body)-10), len(body) - 10, 10, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(l.sources())
			resp, err := client.Get(srv.URL + "/video?" + tt.giveQuery)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, string(got) == string(body[tt.wantOff:tt.wantOff+tt.wantLen]), "bytes of %q differ", tt.giveQuery)
			assert.Equal(t, tt.wantReadFrom, l.sources()[before:],
				"what reached (*net.TCPConn).ReadFrom for %q", tt.giveQuery)
		})
	}
}

// TestDiskWriteRangeOfUnverifiedObject checks the sendfile path after a
// restart, when the body's chunks are verified before the kernel copies.
func TestDiskWriteRangeOfUnverifiedObject(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	body := randomBody(4, 2*chunk+1)
	store(t, d, meta("v", int64(len(body))), body)
	d = reopenDisk(t, d, storage.DiskConfig{})
	srv, l := rangeServer(t, d)
	resp, err := srv.Client().Get(srv.URL + "/v?header=1")
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.True(t, string(got) == string(body), "body differs")
	assert.Equal(t, []string{"*io.LimitedReader{*os.File}"}, l.sources())
	assert.True(t, storage.DiskVerified(d, "v"))
}

// stallingWriter accepts bytes only once release is closed, and closes
// entered at its first Write, as a client whose connection stalls.
type stallingWriter struct {
	entered, release chan struct{}
	once             sync.Once
	buf              bytes.Buffer
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return s.buf.Write(p)
}

// TestDiskWriteRangeNotHeldUpBySlowClient copies from one object to a
// client that stalls, and meanwhile to another. WriteRange used to hold the
// object for the whole copy, so every request sharing the object (the
// edge's followers of a fill or a revalidation) waited for the slowest.
func TestDiskWriteRangeNotHeldUpBySlowClient(t *testing.T) {
	d := newDisk(t, storage.DiskConfig{})
	body := randomBody(5, 256<<10)
	store(t, d, meta("v", int64(len(body))), body)
	o, err := d.Get(context.Background(), "v")
	require.NoError(t, err)
	defer o.Close()
	rw := o.(storage.RangeWriter)

	slow := &stallingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	slowDone := make(chan error, 1)
	go func() {
		_, err := rw.WriteRange(slow, 0, int64(len(body)))
		slowDone <- err
	}()
	<-slow.entered // the slow copy is under way, stalled in Write

	var fast bytes.Buffer
	fastDone := make(chan error, 1)
	go func() {
		_, err := rw.WriteRange(&fast, 1000, 100_000)
		fastDone <- err
	}()
	select {
	case err := <-fastDone:
		require.NoError(t, err)
		assert.True(t, bytes.Equal(body[1000:101_000], fast.Bytes()), "bytes copied beside the stalled copy differ")
	case <-time.After(10 * time.Second):
		t.Error("a WriteRange waited for another one stalled on its client")
	}
	close(slow.release)
	require.NoError(t, <-slowDone)
	assert.True(t, bytes.Equal(body, slow.buf.Bytes()), "bytes copied to the stalled client differ")
}
