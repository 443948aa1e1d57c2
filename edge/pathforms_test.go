package edge_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawGet sends one request line as given (no client library normalises
// it), with Host site.example unless hdr names another, and returns the
// response and its body.
func rawGet(t *testing.T, addr, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	host := "site.example"
	var b strings.Builder
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			host = hdr[i+1]
			continue
		}
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	fields := b.String()
	b.Reset()
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s", target, host, fields)
	b.WriteString("\r\n")
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "GET %s", target)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// TestOnePathForKeyAndOrigin (issue 17 item 4): every path-confusion form
// is keyed exactly as it is sent to the origin, or refused with 400 and
// sent nowhere. Letter case is kept on both sides.
func TestOnePathForKeyAndOrigin(t *testing.T) {
	tests := []struct {
		give string
		want string // the path sent upstream and keyed; "" for a 400
	}{
		{"/account/x.css", "/account/x.css"},
		{"/account.css", "/account.css"},
		{"/account;x.css", "/account;x.css"},
		{"/account%2fx.css", "/account%2Fx.css"},
		{"/account%3bx.css", "/account%3Bx.css"},
		{"/account%23x.css", "/account%23x.css"},
		{"/account%3fx.css", "/account%3Fx.css"},
		{"/account%2ex.css", "/account.x.css"}, // an encoded unreserved character is that character
		{"/ACCOUNT/x.css", "/ACCOUNT/x.css"},
		{"/Account/X.CSS", "/Account/X.CSS"},
		{"/static/./x.css", "/static/x.css"},
		{"/static/a/../x.css", "/static/x.css"},
		{"/static/%2e%2e/x.css", "/x.css"},
		{"/account/..%2fx.css", ""},
		{"/static/..%2faccount", ""},
		{"/static/..%2Faccount.css", ""},
		{"/static/..%5caccount", ""},
		{"/static/..;/account", ""},
		{"/static/..%3b/account", ""},
		{"/account%00.css", ""},
	}
	e := newEnv(t, static("file", "Cache-Control", "max-age=60", "Content-Type", "text/css"))
	addr := e.edge.Listener.Addr().String()
	for _, tt := range tests {
		before := e.origin.hits.Load()
		resp, _ := rawGet(t, addr, tt.give)
		if tt.want == "" {
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "GET %s", tt.give)
			assert.Equal(t, before, e.origin.hits.Load(), "GET %s reached the origin", tt.give)
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", tt.give)
		r, _ := e.origin.lastRequest(t)
		if e.origin.hits.Load() > before {
			assert.Equal(t, tt.want, r.RequestURI, "GET %s: the path the origin received", tt.give)
		}
		key, err := e.h.CanonicalURL("http://site.example" + tt.give)
		require.NoError(t, err)
		assert.Equal(t, "http://site.example"+tt.want, key, "GET %s: the cache key", tt.give)
		o, err := e.store.Get(context.Background(), key)
		if assert.NoError(t, err, "GET %s: stored under its key", tt.give) {
			o.Close()
		}
		resp, _ = rawGet(t, addr, tt.give)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit", "GET %s again", tt.give)
	}
	// Paths are case-sensitive (RFC 3986 §6.2.2.1): two resources.
	hits := e.origin.hits.Load()
	rawGet(t, addr, "/account/x.css")
	rawGet(t, addr, "/Account/x.css")
	assert.Equal(t, hits+1, e.origin.hits.Load(), "/account/x.css was stored; /Account/x.css is another resource")
}
