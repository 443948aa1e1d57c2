package edge_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChunkedRequestBodies: an unsized (chunked) request body that ends
// within 64 KiB reaches the origin with its length; a longer one streams
// whole; one whose chunked framing breaks is answered 400, the client's
// fault, without the origin seeing anything of it.
func TestChunkedRequestBodies(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Length", r.Header.Get("Content-Length")+"/"+strings.Join(r.TransferEncoding, ","))
		io.WriteString(w, "got "+string(b[:min(len(b), 16)])+" of "+itoa(len(b)))
	})
	post := func(body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.edge.URL+"/upload", io.MultiReader(strings.NewReader(body))) // unsized: chunked
		require.NoError(t, err)
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, body := post("small body")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "got small body of 10", body)
	assert.Equal(t, "10/", resp.Header.Get("X-Length"), "sent with its length")

	large := strings.Repeat("0123456789abcdef", 5<<10) // 80 KiB
	resp, body = post(large)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "got 0123456789abcdef of 81920", body)
	assert.Equal(t, "/chunked", resp.Header.Get("X-Length"), "streamed")
	hits := e.origin.hits.Load()

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.edge.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusBadRequest, r.StatusCode)
	assert.Equal(t, hits, e.origin.hits.Load(), "the origin saw nothing of it")
}

func itoa(n int) string { return strconv.Itoa(n) }
