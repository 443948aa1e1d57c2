package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A hostile stream is one connection's worth of bytes: prefix well-formed
// requests (each answered 200 from the cache), then one malformed request,
// which must get a 4xx or no answer, after which the connection must close.
// Anything else answered is a desync: the bytes of a smuggled request
// (always to /smuggled) taken for a request of their own.
type hostileStream struct {
	kind   string
	give   string
	prefix int  // well-formed requests before the hostile one
	want   int  // the status the hostile request must get; 0: any 4xx, or none
	framed bool // ambiguous framing: must get exactly 400 and a close (issue 17)
}

const (
	okReq    = "GET /ok HTTP/1.1\r\nHost: a.example\r\n\r\n"
	smuggled = "GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n"
)

// clte builds a request whose body is framed differently by
// Content-Length and chunked, with te the Transfer-Encoding field line(s).
func clte(te string) string {
	body := "0\r\n\r\n" + smuggled
	return fmt.Sprintf("POST /poison HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n%s\r\n\r\n%s", len(body), te, body)
}

// tecl puts the field lines the other way round, with a Content-Length
// that ends the body inside the first chunk.
func tecl(te string) string {
	chunk := smuggled
	return fmt.Sprintf("POST /poison HTTP/1.1\r\nHost: a.example\r\n%s\r\nContent-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", te, len(chunk), chunk)
}

// chunked is a chunked POST with the given body bytes after its head,
// followed by a smuggled request.
func chunked(body string) string {
	return "POST /poison HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n" + body + smuggled
}

func withHeader(line string) string {
	return "GET /poison HTTP/1.1\r\nHost: a.example\r\n" + line + "\r\nConnection: close\r\n\r\n"
}

func hostileCorpus() []hostileStream {
	var c []hostileStream
	add := func(kind string, framed bool, want int, streams ...string) {
		for _, s := range streams {
			c = append(c, hostileStream{kind: kind, give: s, want: want, framed: framed})
		}
	}
	add("content-length with transfer-encoding", true, 400, clte("Transfer-Encoding: chunked"), tecl("Transfer-Encoding: chunked"))
	add("CL+TE, coding in another case", true, 400, clte("Transfer-Encoding: CHUNKED"), clte("transfer-encoding: Chunked"), tecl("TRANSFER-ENCODING: chunked"))
	add("CL+TE, tab", true, 400, clte("Transfer-Encoding:\tchunked"), clte("Transfer-Encoding: chunked\t"), tecl("Transfer-Encoding:\tchunked"))
	add("CL+TE, leading space", true, 400, clte("Transfer-Encoding:  chunked"), clte("Transfer-Encoding:   chunked  "))
	add("CL+TE, obs-fold", true, 400, clte("Transfer-Encoding:\r\n chunked"), clte("Transfer-Encoding: x\r\n\tchunked"), tecl("Transfer-Encoding:\r\n\tchunked"))
	add("duplicate content-length", true, 400,
		"POST /poison HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: "+fmt.Sprint(3+len(smuggled))+"\r\n\r\nabc"+smuggled,
		"POST /poison HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"+smuggled,
		"POST /poison HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3, 3\r\n\r\nabc"+smuggled)
	for _, v := range []string{"+3", "-1", "3a", "0x3", "", "3 3", "99999999999999999999", "3.0"} {
		add("invalid content-length", true, 400, "POST /poison HTTP/1.1\r\nHost: a.example\r\nContent-Length: "+v+"\r\n\r\nabc"+smuggled)
	}
	for _, te := range []string{"xchunked", "chunked, identity", "gzip, chunked", "identity", "chunked\r\nTransfer-Encoding: chunked", "chunked;q=1", "\"chunked\""} {
		add("obfuscated transfer-encoding", true, 400, chunked("")[:strings.Index(chunked(""), "Transfer-Encoding: ")]+"Transfer-Encoding: "+te+"\r\n\r\n0\r\n\r\n"+smuggled)
	}
	add("malformed transfer-encoding name", false, 400,
		"POST /poison HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"+smuggled,
		"POST /poison HTTP/1.1\r\nHost: a.example\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
	add("transfer-encoding in HTTP/1.0", true, 400,
		"POST /poison HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled,
		"POST /poison HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"+smuggled)
	for _, size := range []string{"zz", "0x5", "-5", strings.Repeat("f", 17), "5 ", "5\n", "5\r", "5;\rx"} {
		add("bad chunk size", false, 0, chunked(size+"\r\nhello\r\n0\r\n\r\n"))
	}
	add("chunk data and size disagree", false, 0, chunked("2\r\nhello\r\n0\r\n\r\n"), chunked("5\r\nhello0\r\n\r\n"))
	add("bare LF", true, 400, "GET /poison HTTP/1.1\nHost: a.example\n\n"+smuggled,
		"GET /poison HTTP/1.1\r\nHost: a.example\nX: 1\r\n\r\n"+smuggled,
		"GET /poison HTTP/1.1\r\nHost: a.example\r\n\n"+smuggled)
	add("bare CR", false, 400, withHeader("X-A: a\rb"), "GET /poison\r HTTP/1.1\r\nHost: a.example\r\n\r\n", withHeader("X-A: a\r\r"))
	add("obs-fold", true, 400, withHeader("X-A: 1\r\n 2"), withHeader("X-A: 1\r\n\t\t2"), "GET /poison HTTP/1.1\r\n Host: a.example\r\n\r\n")
	add("NUL bytes", false, 400, withHeader("X-A: a\x00b"), "GET /poi\x00son HTTP/1.1\r\nHost: a.example\r\n\r\n", withHeader("X\x00A: b"), "GET\x00 /poison HTTP/1.1\r\nHost: a.example\r\n\r\n")
	add("control bytes", false, 400, withHeader("X-A: a\x01b"), withHeader("X-A: a\x7fb"), "GET /poi\x1bson HTTP/1.1\r\nHost: a.example\r\n\r\n", withHeader("X\tA: b"), withHeader("X-A: \x0cb"))
	add("huge header", false, 431, withHeader("X-Big: "+strings.Repeat("a", 64<<10)), withHeader("Cookie: "+strings.Repeat("c=1; ", 8<<10)))
	add("too many headers", false, 431, withHeader(strings.TrimSuffix(strings.Repeat("X-A: 1\r\n", 101), "\r\n")), withHeader(strings.TrimSuffix(strings.Repeat("X: \r\n", 5000), "\r\n")))
	add("request line too long", false, 414, "GET /"+strings.Repeat("a", 9<<10)+" HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET /?"+strings.Repeat("q=1&", 20<<10)+" HTTP/1.1\r\nHost: a.example\r\n\r\n")
	add("invalid method", false, 400, "G@T /poison HTTP/1.1\r\nHost: a.example\r\n\r\n", "(GET) /poison HTTP/1.1\r\nHost: a.example\r\n\r\n",
		" GET /poison HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET\t/poison HTTP/1.1\r\nHost: a.example\r\n\r\n", "G\xc3\x89T /poison HTTP/1.1\r\nHost: a.example\r\n\r\n")
	for _, v := range []string{"HTTP/1.2", "HTTP/2.0", "HTTP/3", "HTTP/1.1x", "http/1.1", "HTTP/1", "HTTP/1.1 x", "HTTP/0.9", "HTTP/11"} {
		add("invalid version", false, 400, "GET /poison "+v+"\r\nHost: a.example\r\n\r\n")
	}
	add("no version (HTTP/0.9)", false, 400, "GET /poison\r\n\r\n")
	add("absolute-form for a foreign host", false, 0,
		"GET http://evil.example/poison HTTP/1.1\r\nHost: a.example\r\n\r\n"+smuggled,
		"GET https://evil.example/poison HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET http://a.example@evil.example/poison HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET http://evil.example/poison HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
		"GET ftp://a.example/poison HTTP/1.1\r\nHost: a.example\r\n\r\n")
	add("CONNECT", false, 0, "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
		"CONNECT a.example:80 HTTP/1.1\r\nHost: a.example:80\r\n\r\n"+smuggled,
		"CONNECT /poison HTTP/1.1\r\nHost: a.example\r\n\r\n")
	add("bad Host", false, 0,
		"GET /poison HTTP/1.1\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: a.example, evil.example\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: a.example:abc\r\nConnection: close\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: [::1\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
		"GET /poison HTTP/1.1\r\nHost: evil.example@a.example\r\n\r\n")
	add("HTTP/2 preface on HTTP/1.1", false, 400, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	add("malformed field name", false, 400, withHeader("Host : a.example"), withHeader("X (: 1"), withHeader(": empty"), withHeader("X-A\t: 1"), withHeader("NoColon"))
	add("expect 100-continue with CL+TE", true, 400, clte("Expect: 100-continue\r\nTransfer-Encoding: chunked"))
	add("request target forms", false, 0, "GET a.example/poison HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
		"GET /poison#frag HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"+smuggled)
	add("too many empty lines first", false, 400, "\r\n\r\n\r\n"+smuggled)
	// The same attacks after well-formed requests on the connection.
	for _, s := range []string{clte("Transfer-Encoding: chunked"), tecl("Transfer-Encoding: chunked"), clte("Transfer-Encoding:\r\n chunked")} {
		c = append(c, hostileStream{kind: "pipelined behind good requests", give: okReq + okReq + s, prefix: 2, want: 400, framed: true})
	}
	return c
}

// TestHostileRequests sends each hostile stream over a raw connection to a
// node, whole and in pieces: every hostile request gets a 4xx or no answer
// and a closed connection, nothing smuggled is answered or reaches the
// origin, a canary on a fresh connection is served right after, and nothing
// but the canary and the well-formed requests' object is stored.
func TestHostileRequests(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, "body of "+r.URL.Path)
	})
	cfg := writeFile(t, "outpost.yaml", "hosts:\n  - names: [a.example]\n    origins: [\""+o.URL+"\"]\n")
	tn := startNode(t, "--config", cfg)
	addr := strings.TrimPrefix(tn.url, "http://")
	canary := func() error {
		resp, body := fetch(t, tn.url+"/canary", "Host", "a.example")
		if resp.StatusCode != 200 || body != "body of /canary" {
			return fmt.Errorf("canary: %d %q", resp.StatusCode, body)
		}
		return nil
	}
	require.NoError(t, canary())
	resp, _ := fetch(t, tn.url+"/ok", "Host", "a.example")
	require.Equal(t, 200, resp.StatusCode)
	originBefore := o.total.Load()

	corpus := hostileCorpus()
	kinds := map[string]bool{}
	rnd := rand.New(rand.NewPCG(15, 17))
	streams, desyncs := 0, 0
	for i, hs := range corpus {
		kinds[hs.kind] = true
		for _, split := range []bool{false, true} {
			streams++
			name := fmt.Sprintf("%s/%d", hs.kind, i)
			if split {
				name += "/in pieces"
			}
			statuses, closed := sendRaw(t, addr, hs.give, split, rnd)
			ok := true
			for j := range hs.prefix {
				ok = assert.True(t, j < len(statuses) && statuses[j] == 200, "%s: well-formed request %d answered %v", name, j, statuses) && ok
			}
			rest := statuses[min(hs.prefix, len(statuses)):]
			if len(rest) > 1 {
				desyncs++
				ok = false
				t.Errorf("%s: desync: %d answers to one hostile request %v; stream %q", name, len(rest), statuses, hs.give)
			}
			if len(rest) >= 1 {
				switch {
				case hs.want != 0:
					ok = assert.Equal(t, hs.want, rest[0], "%s: status; stream %q", name, hs.give) && ok
				default:
					ok = assert.True(t, rest[0] >= 400 && rest[0] < 500, "%s: status %d is no 4xx; stream %q", name, rest[0], hs.give) && ok
				}
			} else if hs.framed {
				ok = assert.Fail(t, "no answer", "%s: ambiguous framing must be answered 400; stream %q", name, hs.give) && ok
			}
			ok = assert.True(t, closed, "%s: connection left open; stream %q", name, hs.give) && ok
			require.NoError(t, canary(), "%s: node unwell after %q", name, hs.give)
			if !ok {
				t.Logf("%s: answers %v, closed %v", name, statuses, closed)
			}
		}
	}

	for _, p := range []string{"/smuggled", "/poison"} {
		assert.Zero(t, o.count(p), "%s reached the origin", p)
	}
	assert.Equal(t, originBefore, o.total.Load(), "no hostile request reached the origin")
	var stored []string
	require.NoError(t, tn.n.store.(storage.Walker).Walk(context.Background(), func(m *storage.Meta) error {
		stored = append(stored, m.Key)
		return nil
	}))
	assert.ElementsMatch(t, []string{"http://a.example/canary", "http://a.example/ok"}, stored, "poisoned entries")
	assert.Zero(t, metric(t, tn, "outpost_http_panics_total"), "handler panics")
	poisoned := len(stored) - 2
	t.Logf("%d streams of %d kinds: 0 crashes, %d desyncs, %d poisoned entries", streams, len(kinds), desyncs, poisoned)
	assert.GreaterOrEqual(t, len(kinds), 25)
}

// sendRaw writes raw on a new connection (in two or three pieces when
// split) and returns the statuses of the answers read until the node
// closes the connection (closed) or says nothing more for a while.
func sendRaw(t *testing.T, addr, raw string, split bool, rnd *rand.Rand) (statuses []int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	writeErr := make(chan error, 1)
	go func() {
		// Writes may fail once the node has answered and closed: what
		// matters is what it answered.
		if !split || len(raw) < 3 {
			_, err := io.WriteString(c, raw)
			writeErr <- err
			return
		}
		a := 1 + rnd.IntN(len(raw)-2)
		b := a + rnd.IntN(len(raw)-a)
		for _, part := range []string{raw[:a], raw[a:b], raw[b:]} {
			if _, err := io.WriteString(c, part); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	defer func() { <-writeErr }()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return statuses, false
			}
			return statuses, true // EOF or reset: closed
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
}

// metric returns the sum of a metric's series from the node's admin
// listener.
func metric(t *testing.T, tn *testNode, name string) float64 {
	t.Helper()
	total := 0.0
	for _, m := range metrictest.Series(t, tn.n.reg, name) {
		total += metrictest.Value(m)
	}
	return total
}
