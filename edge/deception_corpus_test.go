package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The deception corpus (issue 17, "How it is checked"): a victim's request
// with credentials, then the same URL without, through a real edge in
// front of an origin that behaves like the applications web cache
// deception preys on: its router is lenient (any path that mentions
// "account", in any case, after any decoding, is the account page), and
// it sends the same caching headers whoever asks.

// corpusForms are the path-confusion forms of the issue; {ext} is replaced
// by a static extension.
var corpusForms = []string{
	"/account/x{ext}", "/account{ext}", "/account;x{ext}", "/account%2fx{ext}", "/account%3bx{ext}",
	"/account%23x{ext}", "/account%3fx{ext}", "/account/..%2fx{ext}", "/static/..%2faccount{ext}", "/ACCOUNT/x{ext}",
}

var corpusExtensions = []string{".css", ".js", ".png", ".json", ".txt", ".ts"}

// corpusFreshness are the caching headers the origin sends, by source.
var corpusFreshness = []struct {
	name string
	hdr  func(now time.Time) []string
}{
	{"none", func(time.Time) []string { return nil }},
	{"heuristic", func(now time.Time) []string {
		return []string{"Last-Modified", now.Add(-240 * time.Hour).UTC().Format(http.TimeFormat)}
	}},
	{"max-age", func(time.Time) []string { return []string{"Cache-Control", "max-age=600"} }},
	{"public", func(now time.Time) []string {
		return []string{"Cache-Control", "public", "Last-Modified", now.Add(-240 * time.Hour).UTC().Format(http.TimeFormat)}
	}},
	{"s-maxage", func(time.Time) []string { return []string{"Cache-Control", "s-maxage=600"} }},
}

var corpusCredentials = []struct {
	name string
	hdr  []string
}{
	{"cookie", []string{"Cookie", "session=victim"}},
	{"authorization", []string{"Authorization", "Bearer victim"}},
	{"both", []string{"Cookie", "session=victim", "Authorization", "Bearer victim"}},
}

type corpusCase struct {
	path, freshness, credentials string
	fresh                        func(time.Time) []string
	setCookie                    bool
	victim                       []string
}

func corpusCases() []corpusCase {
	var cases []corpusCase
	for _, form := range corpusForms {
		for _, ext := range corpusExtensions {
			for _, f := range corpusFreshness {
				for _, sc := range []bool{false, true} {
					for _, cr := range corpusCredentials {
						cases = append(cases, corpusCase{
							path: strings.ReplaceAll(form, "{ext}", ext), freshness: f.name, fresh: f.hdr,
							credentials: cr.name, victim: cr.hdr, setCookie: sc,
						})
					}
				}
			}
		}
	}
	return cases
}

// runCorpus sends every case through an edge with the given host policy
// and returns how many cases leaked (a private body or the victim's cookie
// reached the second client), with a description of the first few.
func runCorpus(t *testing.T, policy edge.Privacy, keep func(corpusCase) bool) (tried, leaks int, examples []string) {
	cases := corpusCases()
	var clk *clock
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		// The case is the host's first label: c17.corpus.test.
		i, err := strconv.Atoi(strings.TrimPrefix(strings.Split(r.Host, ".")[0], "c"))
		if err != nil || i >= len(cases) {
			http.Error(w, "bad case host "+r.Host, http.StatusTeapot)
			return
		}
		c := cases[i]
		hdr := c.fresh(clk.Now())
		for j := 0; j+1 < len(hdr); j += 2 {
			w.Header().Add(hdr[j], hdr[j+1])
		}
		victim := strings.Contains(r.Header.Get("Cookie"), "victim") || strings.Contains(r.Header.Get("Authorization"), "victim")
		if !strings.Contains(strings.ToLower(r.URL.Path), "account") {
			// The real static file.
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, "static file")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if victim {
			if c.setCookie {
				w.Header().Add("Set-Cookie", "session=victim-renewed; HttpOnly")
			}
			fmt.Fprintf(w, "<h1>PRIVATE account of victim, case %d</h1>", i)
			return
		}
		if c.setCookie {
			w.Header().Add("Set-Cookie", "anon=1")
		}
		io.WriteString(w, "<h1>Please sign in</h1>")
	}, withPrivacy(policy))
	clk = e.clock
	conn := dialRaw(t, e.edge.Listener.Addr().String())
	for i, c := range cases {
		if !keep(c) {
			continue
		}
		host := "c" + strconv.Itoa(i) + ".corpus.test"
		tried++
		first, mine := conn.get(t, host, c.path, c.victim...)
		if first.StatusCode != http.StatusBadRequest {
			// The victim was served its page: the case is live.
			require.Contains(t, mine, "PRIVATE", "%s with %s", c.path, c.credentials)
		}
		second, body := conn.get(t, host, c.path)
		leaked := strings.Contains(body, "PRIVATE")
		for _, v := range second.Header.Values("Set-Cookie") {
			leaked = leaked || strings.Contains(v, "victim")
		}
		if leaked {
			leaks++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%s with %s, freshness %s, Set-Cookie %v: victim got %q, then %q",
					c.path, c.credentials, c.freshness, c.setCookie, first.Header.Get("Cache-Status"), second.Header.Get("Cache-Status")))
			}
		}
	}
	return tried, leaks, examples
}

// rawConn is one keep-alive client connection that sends request lines
// as given (no client library normalises them).
type rawConn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c := &rawConn{addr: addr}
	t.Cleanup(func() {
		if c.conn != nil {
			c.conn.Close()
		}
	})
	return c
}

// get sends GET target with a Host and fields, and reads the response; a
// connection the edge closed (after a 400) is dialled again.
func (c *rawConn) get(t *testing.T, host, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		require.NoError(t, err)
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	require.NoError(t, c.conn.SetDeadline(time.Now().Add(10*time.Second)))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(c.conn, b.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err, "GET %s", target)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	if resp.Close {
		c.conn.Close()
		c.conn = nil
	}
	return resp, string(body)
}

// TestDeceptionCorpus: by default no case leaks. The same corpus with the
// host's armour switched off does leak, which shows that it can tell.
func TestDeceptionCorpus(t *testing.T) {
	all := func(corpusCase) bool { return true }
	tests := []struct {
		name      string
		policy    edge.Privacy
		keep      func(corpusCase) bool
		wantLeaks bool
	}{
		{"default", edge.Privacy{}, all, false},
		{"Set-Cookie stored without the cookie", edge.Privacy{SetCookie: edge.SetCookieStrip},
			func(c corpusCase) bool { return c.setCookie }, false},
		{"armour off (control)", edge.Privacy{StoreTypeMismatch: true, HeuristicWithCookie: true},
			func(c corpusCase) bool { return strings.HasSuffix(c.path, ".css") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tried, leaks, examples := runCorpus(t, tt.policy, tt.keep)
			require.GreaterOrEqual(t, tried, 100)
			t.Logf("%d cases, %d leaks", tried, leaks)
			if tt.wantLeaks {
				assert.Positive(t, leaks, "the control must leak, or the corpus proves nothing")
				return
			}
			assert.Zero(t, leaks, "leaks, e.g.:\n%s", strings.Join(examples, "\n"))
		})
	}
}
