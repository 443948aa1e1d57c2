package origin

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawOrigin answers each connection's requests with the given raw
// responses, one per request, then closes the connection.
func rawOrigin(t *testing.T, responses ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for _, resp := range responses {
				req, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, resp)
			}
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, p *Pool, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://example.test"+path, nil)
	require.NoError(t, err)
	resp, err := p.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestUnknownTransferCodingIsReadToClose: a response with a transfer
// coding net/http does not know is delimited by the connection closing
// (RFC 9112 §6.3), not an error.
func TestUnknownTransferCodingIsReadToClose(t *testing.T) {
	url := rawOrigin(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: zorkcoding\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nthe whole body")
	p, err := New(Config{Origins: []Server{{URL: url}}})
	require.NoError(t, err)
	defer p.Close()
	resp, body := get(t, p, "/te")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "the whole body", body)
	assert.Equal(t, "1", resp.Header.Get("X-A"))
	assert.Empty(t, resp.Header.Get("Transfer-Encoding"))
}

// TestKeepAliveResponsesPassUntouched: chunked and sized responses, with a
// 1xx first, share one connection as before.
func TestKeepAliveResponsesPassUntouched(t *testing.T) {
	url := rawOrigin(t,
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(100000)+"\r\n\r\n"+strings.Repeat("x", 100000),
	)
	p, err := New(Config{Origins: []Server{{URL: url}}})
	require.NoError(t, err)
	defer p.Close()
	_, body := get(t, p, "/1")
	assert.Equal(t, "first", body)
	_, body = get(t, p, "/2")
	assert.Equal(t, "second", body)
	_, body = get(t, p, "/3")
	assert.Equal(t, 100000, len(body))
}

func TestFixTransferEncoding(t *testing.T) {
	tests := []struct{ give, want string }{
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\nA: b\r\n\r\n", "HTTP/1.1 200 OK\r\nA: b\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(fixTransferEncoding([]byte(tt.give))), "fixTransferEncoding(%q)", tt.give)
	}
}
