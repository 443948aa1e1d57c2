package main

import (
	"bufio"
	"bytes"
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

// TestSendTimeout: a client that stops reading a large object served from
// disk (sendfile) is dropped after send_timeout; one that reads slowly but
// steadily receives every byte.
func TestSendTimeout(t *testing.T) {
	const size = 24 << 20 // well above what loopback socket buffers hold
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(big)
	})
	cfg := writeFile(t, "outpost.yaml", "send_timeout: 1s\n")
	tn := startNode(t, "--origin", o.URL, "--cache-dir", t.TempDir(), "--memory", "8MiB", "--config", cfg)
	resp, body := fetch(t, tn.url+"/video.mp4") // fill
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, body, size)
	resp, _ = fetch(t, tn.url+"/video.mp4")
	require.Contains(t, resp.Header.Get("Cache-Status"), "hit")

	// A client that asks and stops reading.
	conn, err := net.Dial("tcp", strings.TrimPrefix(tn.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /video.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(3 * time.Second) // send_timeout passes with the socket buffers full
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	assert.Less(t, n, int64(size), "the node gave up on the stalled client")

	// A client that reads slowly, but never stalls for send_timeout.
	conn2, err := net.Dial("tcp", strings.TrimPrefix(tn.url, "http://"))
	require.NoError(t, err)
	defer conn2.Close()
	fmt.Fprintf(conn2, "GET /video.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn2)
	resp2, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	var got int64
	buf := make([]byte, 4<<20)
	for pauses := int64(0); ; {
		k, err := resp2.Body.Read(buf)
		got += int64(k)
		if err != nil {
			break
		}
		if got/(4<<20) > pauses { // a pause every 4 MiB, each well within 1 s
			pauses++
			time.Sleep(300 * time.Millisecond)
		}
	}
	assert.Equal(t, int64(size), got)
}
