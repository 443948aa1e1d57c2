package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/internal/httpguard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastPathEnv, set to 1, runs every test node with fast_path on:
// TestFastPathSuites runs the node suites again that way.
const fastPathEnv = "OUTPOST_TEST_FAST_PATH"

// fastPathSuites are the tests TestFastPathSuites runs again with the
// fast path on: the listener's conformance (hostile clients, smuggling,
// limits and timeouts), cache poisoning and privacy, access rules, the
// access log, panics, graceful stop, send timeouts, purges and reloads.
var fastPathSuites = []string{
	"TestHostileRequests", "TestLimitsAnswerAndCount", "TestMaxObjectIsServedNotStored", "TestMaxVariants",
	"TestPoisoningProbes", "TestPoisoningProbesUnstrippedOverrides", "TestPrivacyConfig", "TestShieldSeesTheClientThroughTrustedEdges",
	"TestAccessLogCombined", "TestAccessLogJSON", "TestHandlerPanic", "TestServeCachesAndStopsGracefully", "TestSendTimeout",
	"TestPurgeEndToEnd", "TestPurgeMethod", "TestBucketHost", "TestSignedURLHost", "TestRateLimitAndHotlinkHost",
	"TestOriginFaultsStoreNothingWrong", "TestLoopIs508", "TestPutSurvivesAnIdleClose", "TestReloadAddsHostChangesOriginDuringDownload",
	// Over TLS: HTTP/1.1 on the fast path, HTTP/2 handed to net/http.
	"TestTLSListener", "TestTLSListenerGuardsHTTP1", "TestTLSCertificatePerClient", "TestTicketsResumeAcrossNodes",
	"TestH2Spec", "TestHTTP3HitAfterHTTP1Miss", "TestCertificatesBySNIReloaded",
}

// TestFastPathSuites runs the node suites again, in a child process of
// this test binary, with every plain-HTTP node on the fast path; each must
// pass there.
func TestFastPathSuites(t *testing.T) {
	if os.Getenv(fastPathEnv) == "1" {
		t.Skip("already the fast-path run")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	run := "^(" + strings.Join(fastPathSuites, "|") + ")$"
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.count=1", "-test.v", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), fastPathEnv+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the suites with fast_path on:\n%s", out)
	for _, name := range fastPathSuites {
		assert.Contains(t, string(out), "--- PASS: "+name+" (", "with fast_path on")
	}
}

// fastNode starts a node with fast_path on in front of an origin that
// serves "body of PATH" for a day, or streams for /stream/.
func fastNode(t *testing.T, origin http.HandlerFunc) (*testNode, *countingOrigin) {
	t.Helper()
	if origin == nil {
		origin = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=86400")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "body of "+r.URL.Path)
		}
	}
	o := newCountingOrigin(t, origin)
	cfg := writeFile(t, "outpost.yaml", "fast_path: true\n")
	tn := startNode(t, "--origin", o.URL, "--config", cfg)
	require.NotNil(t, tn.n.fast, "fast_path: true starts the fast path")
	return tn, o
}

func dialNode(t *testing.T, tn *testNode) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(tn.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestFastPathPipelinedHits: hits sent in one write are answered in
// order, HEAD with the length but no body, each with Date and
// Cache-Status, on one kept-alive connection.
func TestFastPathPipelinedHits(t *testing.T) {
	tn, o := fastNode(t, nil)
	for _, p := range []string{"/a", "/b", "/c"} {
		resp, _ := fetch(t, tn.url+p)
		require.Equal(t, 200, resp.StatusCode)
	}
	c, br := dialNode(t, tn)
	host := strings.TrimPrefix(tn.url, "http://") // the key fetch filled
	var reqs strings.Builder
	for _, p := range []string{"/c", "/a", "/b", "HEAD /a", "/b"} {
		method := "GET "
		if strings.HasPrefix(p, "HEAD ") {
			method = ""
		}
		fmt.Fprintf(&reqs, "%s%s HTTP/1.1\r\nHost: %s\r\n\r\n", method, p, host)
	}
	_, err := io.WriteString(c, reqs.String())
	require.NoError(t, err)
	for _, p := range []string{"/c", "/a", "/b"} {
		resp, body := readResponse(t, br, "GET")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "body of "+p, body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.NotEmpty(t, resp.Header.Get("Date"))
		assert.False(t, resp.Close)
	}
	resp, body := readResponse(t, br, "HEAD")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, int64(len("body of /a")), resp.ContentLength)
	_, body = readResponse(t, br, "GET")
	assert.Equal(t, "body of /b", body, "the response after HEAD starts where HEAD's header ends")
	assert.Equal(t, int64(3), o.total.Load(), "every one a hit")
	assert.Equal(t, int64(8), tn.n.fast.served.Load(), "the fills and the five, on the fast path")
	assert.Zero(t, tn.n.fast.handoffs.Load())
}

// TestFastPathLargeHead: a head larger than the read buffer is read whole
// (into a buffer of its own), and the connection serves on.
func TestFastPathLargeHead(t *testing.T) {
	tn, _ := fastNode(t, nil)
	fetch(t, tn.url+"/a")
	c, br := dialNode(t, tn)
	host := strings.TrimPrefix(tn.url, "http://")
	big := "GET /a HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("b", 10<<10) + "\r\n\r\n"
	io.WriteString(c, big+big+"GET /a HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	for range 3 {
		resp, body := readResponse(t, br, "GET")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "body of /a", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	}
	assert.Equal(t, int64(4), tn.n.fast.served.Load(), "the fill and the three, all on the fast path")
	assert.Zero(t, tn.n.fast.handoffs.Load())
}

// TestFastPathConnectionClose: HTTP/1.0 closes after its response unless
// it asks to keep the connection; "Connection: close" closes and says so.
func TestFastPathConnectionClose(t *testing.T) {
	tn, _ := fastNode(t, nil)
	fetch(t, tn.url+"/a")

	c, br := dialNode(t, tn)
	io.WriteString(c, "GET /a HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	assert.Equal(t, "HTTP/1.0", resp.Proto)
	assert.Equal(t, "body of /a", body)
	_, err := br.ReadByte()
	assert.Equal(t, io.EOF, err, "HTTP/1.0 without keep-alive: closed")

	c, br = dialNode(t, tn)
	io.WriteString(c, "GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	resp, _ = readResponse(t, br, "GET")
	assert.Equal(t, "keep-alive", resp.Header.Get("Connection"))
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, body = readResponse(t, br, "GET")
	assert.True(t, resp.Close, "Connection: close in the response")
	assert.Equal(t, "body of /a", body)
	_, err = br.ReadByte()
	assert.Equal(t, io.EOF, err)
}

// TestFastPathHandsOff: what the fast path does not take goes to net/http
// and the guard on the same connection, which answers it as it always
// does: a malformed head 400 and a close, a POST through to the origin,
// and the connection then stays with net/http.
func TestFastPathHandsOff(t *testing.T) {
	tn, o := fastNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	fetch(t, tn.url+"/a")

	c, br := dialNode(t, tn)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	_, body := readResponse(t, br, "GET")
	assert.Equal(t, "GET /a ", body)
	_, body = readResponse(t, br, "POST")
	assert.Equal(t, "POST /p hello", body, "the POST's body replayed to net/http")
	resp, body := readResponse(t, br, "GET")
	assert.Equal(t, "GET /a ", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, int64(1), tn.n.fast.handoffs.Load(), "the POST's connection went to net/http")

	// Ambiguous framing after a hit: the guard's 400, then nothing more.
	c, br = dialNode(t, tn)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, br, "GET")
	resp, _ = readResponse(t, br, "GET")
	assert.Equal(t, 400, resp.StatusCode)
	assert.True(t, resp.Close)
	_, err := http.ReadResponse(br, nil)
	assert.Error(t, err, "nothing answered after the refusal")

	// A malformed head net/http refuses on its own (a space in a name).
	c, br = dialNode(t, tn)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
	resp, _ = readResponse(t, br, "GET")
	assert.Equal(t, 400, resp.StatusCode)
	assert.Zero(t, o.counts["/smuggled"])
}

// TestFastPathStreamsMiss: a miss whose origin sends its body in parts
// without a length reaches the client in parts, chunked, before the
// origin has finished.
func TestFastPathStreamsMiss(t *testing.T) {
	release := make(chan struct{})
	tn, _ := fastNode(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second part")
	})
	c, br := dialNode(t, tn)
	io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	first := make([]byte, len("first part;"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err, "the first part arrives while the origin waits")
	assert.Equal(t, "first part;", string(first))
	close(release)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "second part", string(rest))

	io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, "first part;second part", body)
}

// TestFastPathStopDrains: a graceful stop lets the requests in progress
// finish, on the fast path and on a connection it handed to net/http.
func TestFastPathStopDrains(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	tn, _ := fastNode(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		time.Sleep(300 * time.Millisecond)
		if r.Method == http.MethodPost {
			time.Sleep(500 * time.Millisecond) // still running when net/http's drain begins
		}
		io.WriteString(w, "slow")
	})
	idle, ibr := dialNode(t, tn)
	io.WriteString(idle, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	busy, bbr := dialNode(t, tn)
	io.WriteString(busy, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n") // waits for the same fill
	handed, hbr := dialNode(t, tn)
	io.WriteString(handed, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz") // net/http's, passed to the origin
	time.Sleep(50 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- tn.stop(t) }()
	for _, br := range []*bufio.Reader{ibr, bbr} {
		resp, body := readResponse(t, br, "GET")
		assert.Equal(t, "slow", body)
		assert.True(t, resp.Close, "the last response on a stopping node")
	}
	// The fast path drains first, then net/http: its response may go out
	// before it learns of the stop, and then the idle connection closes.
	_, body := readResponse(t, hbr, "POST")
	assert.Equal(t, "slow", body)
	_, err := hbr.ReadByte()
	assert.Equal(t, io.EOF, err)
	require.NoError(t, <-stopped)
}

// TestFastPathOverTLS: with tls, HTTPS/1.1 requests are answered on the
// fast path, keyed and forwarded as https (Request.TLS is set), and HTTP/2
// connections go to net/http whole.
func TestFastPathOverTLS(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "secure "+r.URL.Path+" proto="+r.Header.Get("X-Forwarded-Proto"))
	})
	cfg := writeFile(t, "outpost.yaml", "fast_path: true\n")
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile, "--config", cfg)
	require.NotNil(t, tn.n.fast)
	addr := strings.TrimPrefix(tn.url, "http://")
	get := func(client *http.Client, path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get("https://" + addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}, Timeout: 10 * time.Second}
	defer h1.CloseIdleConnections()
	resp, body := get(h1, "/a.css")
	assert.Equal(t, "HTTP/1.1", resp.Proto)
	assert.Equal(t, "secure /a.css proto=https", body)
	resp, body = get(h1, "/a.css")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, "secure /a.css proto=https", body)
	obj, err := tn.n.store.Get(t.Context(), "https://"+addr+"/a.css")
	require.NoError(t, err, "keyed under https")
	obj.Close()
	assert.Equal(t, int64(2), tn.n.fast.served.Load(), "both answered on the fast path")

	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	defer h2.CloseIdleConnections()
	resp, body = get(h2, "/a.css")
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, "secure /a.css proto=https", body)
	assert.Equal(t, int64(2), tn.n.fast.served.Load(), "HTTP/2 is net/http's")
	assert.Equal(t, int64(1), tn.n.fast.handoffs.Load())

	// A request the fast path does not take still sees TLS after the hand-off.
	req, err := http.NewRequest(http.MethodOptions, "https://"+addr+"/b.css", nil)
	require.NoError(t, err)
	resp, err = h1.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(b), "proto=https")
	assert.Equal(t, 1, o.count("/a.css"))
}

// FuzzParseFast: a head the fast path takes is one net/http reads the same
// way: method, target, Host, header fields, and whether to close.
func FuzzParseFast(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /x?y=1 HTTP/1.0\r\nHost: a.example:80\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nhost: a\r\naccept-encoding: gzip\r\nAccept-Encoding: br\r\nPragma: no-cache\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close, keep-alive\r\nX:  y \t\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nX: \x80\xff\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n == 0 {
			return
		}
		b = b[:n]
		got, ok := parseFast(b, "192.0.2.1:1234")
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("the fast path takes %q, net/http refuses it: %v", b, err)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.URL.String() != want.URL.String() ||
			got.Host != want.Host || got.Proto != want.Proto || got.ProtoMinor != want.ProtoMinor || got.Close != want.Close {
			t.Fatalf("%q: fast path %s %s %s host %q close %v; net/http %s %s %s host %q close %v", b,
				got.Method, got.URL, got.Proto, got.Host, got.Close, want.Method, want.URL, want.Proto, want.Host, want.Close)
		}
		if fmt.Sprint(got.Header) != fmt.Sprint(want.Header) {
			t.Fatalf("%q: header fields differ:\nfast path %v\nnet/http  %v", b, got.Header, want.Header)
		}
		if want.ContentLength != 0 || len(want.TransferEncoding) > 0 {
			t.Fatalf("%q: the fast path takes a request with a body", b)
		}
	})
}

// BenchmarkFastPathHit: 1 KiB hits over kept-alive loopback connections,
// with fast_path on and off, through the whole node (listener chain, guard,
// access metrics, edge). The client allocates nothing per request, so
// allocs/op is the node's.
func BenchmarkFastPathHit(b *testing.B) {
	for _, mode := range []string{"default", "fast_path"} {
		b.Run("1KiB/"+mode, func(b *testing.B) {
			body := strings.Repeat("x", 1<<10)
			o := httptestOrigin(b, body)
			args := []string{"--origin", o}
			if mode == "fast_path" {
				args = append(args, "--config", writeFile(b, "outpost.yaml", "fast_path: true\n"))
			}
			tn := startNode(b, args...)
			addr := strings.TrimPrefix(tn.url, "http://")
			req := []byte("GET /obj HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				buf := make([]byte, 8<<10)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readRawResponse(c, buf, len(body)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// readRawResponse reads one response with a body of size bytes from c.
func readRawResponse(c net.Conn, buf []byte, size int) error {
	have := 0
	for {
		n, err := c.Read(buf[have:])
		have += n
		if err != nil {
			return err
		}
		if i := bytes.Index(buf[:have], []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("not a 200: %q", buf[:i])
			}
			for rest := i + 4 + size - have; rest > 0; {
				n, err := c.Read(buf[:min(rest, len(buf))])
				if err != nil {
					return err
				}
				rest -= n
			}
			return nil
		}
	}
}

// httptestOrigin serves body, cacheable for a day, and fills the cache.
func httptestOrigin(b *testing.B, body string) string {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}))
	b.Cleanup(o.Close)
	return o.URL
}

// TestFastWriterMatchesNetHTTP: for handlers that use the ResponseWriter
// in the ways net/http gives meaning to, the fast path's response has the
// status line, header fields (Date aside) and body net/http's has, and
// keeps or closes the connection alike. (One deliberate difference is not
// here: net/http passes on a Content-Length a handler set that is no
// number, or chunks around it; the fast path drops it and counts.)
func TestFastWriterMatchesNetHTTP(t *testing.T) {
	big := strings.Repeat("z", 40<<10)
	handlers := map[string]http.HandlerFunc{
		"small": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") },
		"empty": func(w http.ResponseWriter, r *http.Request) {},
		"declared": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		},
		"big unknown": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) },
		"big declared": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big)
		},
		"flushed": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		},
		"204": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(204)
		},
		"304": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "x/y")
			w.Header().Set("Etag", `"1"`)
			w.WriteHeader(304)
		},
		"404 typed": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 404) },
		"handler close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		},
		"identity": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			io.WriteString(w, "raw")
		},
		"odd status":     func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299); io.WriteString(w, "x") },
		"newline in val": func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-A", "1\r\n2"); io.WriteString(w, "x") },
		"encoded": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "\x1f\x8b")
		},
		"multi values": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "A")
			w.Header().Add("Vary", "B")
			io.WriteString(w, "x")
		},
	}
	requests := []string{
		"GET /p HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /p HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET /p HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
		"HEAD /p HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
		"GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	}
	g, err := httpguardNew()
	require.NoError(t, err)
	for name, h := range handlers {
		std := httptest.NewServer(h)
		t.Cleanup(std.Close)
		fast := startFastServer(t, h, g)
		for _, req := range requests {
			t.Run(name+"/"+strings.Fields(req)[0]+"/"+strings.Fields(req)[2], func(t *testing.T) {
				want := rawExchange(t, std.Listener.Addr().String(), req)
				got := rawExchange(t, fast, req)
				assert.Equal(t, want, got)
			})
		}
	}
}

// rawExchange sends req, then a probe request, and describes what came
// back: the response without its Date, the decoded body, and whether the
// connection served the probe.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	method := strings.Fields(req)[0]
	var out strings.Builder
	tp := bufio.NewReader(io.TeeReader(c, &out))
	resp, err := http.ReadResponse(tp, &http.Request{Method: method})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	head, _, _ := strings.Cut(out.String(), "\r\n\r\n")
	var lines []string
	for _, l := range strings.Split(head, "\r\n") {
		if !strings.HasPrefix(l, "Date: ") {
			lines = append(lines, l)
		}
	}
	io.WriteString(c, "GET /p HTTP/1.1\r\nHost: a\r\n\r\n") // the probe
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, perr := http.ReadResponse(tp, nil)
	if len(body) > 40 {
		body = append(body[:20:20], fmt.Sprintf("... (%d bytes)", len(body))...)
	}
	return fmt.Sprintf("%s\n\nbody %q\nserves on: %v", strings.Join(lines, "\n"), body, perr == nil)
}

func httpguardNew() (*httpguard.Guard, error) { return httpguard.New(httpguard.Config{}) }

// startFastServer serves h on a loopback port with the fast path in front
// of an http.Server, over a guarded listener, as the node does.
func startFastServer(t *testing.T, h http.Handler, g *httpguard.Guard) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: g.Handler(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
	fs := newFastServer(g.Listener(ln), srv, g.MaxHead()+4<<10, slog.New(slog.DiscardHandler))
	srv.ConnContext = guardConnContext(g.ConnContext)
	done := make(chan struct{}, 2)
	go func() { fs.serve(); done <- struct{}{} }()
	go func() { srv.Serve(fs.handoff); done <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		fs.shutdown(ctx)
		srv.Shutdown(ctx)
		<-done
		<-done
	})
	return ln.Addr().String()
}
