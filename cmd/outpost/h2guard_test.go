package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client speaks raw HTTP/2 frames to a node, as a hostile or unusual
// client would.
type h2Client struct {
	t   *testing.T
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

// dialH2 opens an HTTP/2 connection and exchanges SETTINGS; settings are
// the client's.
func dialH2(t *testing.T, addr string, settings ...http2.Setting) *h2Client {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	h := &h2Client{t: t, c: c, fr: http2.NewFramer(c, c)}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.buf)
	_, err = io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	require.NoError(t, h.fr.WriteSettings(settings...))
	return h
}

// block encodes a request's fields: GET path, then extra name/value pairs.
func (h *h2Client) block(path string, extra ...string) []byte {
	h.buf.Reset()
	fields := append([]string{":method", "GET", ":scheme", "https", ":authority", "localhost", ":path", path}, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(h.buf.Bytes())
}

func (h *h2Client) get(stream uint32, path string, extra ...string) {
	h.t.Helper()
	require.NoError(h.t, h.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: stream, BlockFragment: h.block(path, extra...), EndStream: true, EndHeaders: true,
	}))
}

// answer reads frames until stream ends: its status and body, or the
// RST_STREAM or GOAWAY that ended it.
type h2Answer struct {
	status    string
	body      string
	rst       http2.ErrCode
	goAway    bool
	goAwayErr http2.ErrCode
	firstData int // length of the stream's first DATA frame
}

func (h *h2Client) answer(stream uint32) h2Answer {
	h.t.Helper()
	var a h2Answer
	a.firstData = -1
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("stream %d: %v (answer so far %+v)", stream, err, a)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				require.NoError(h.t, h.fr.WriteSettingsAck())
			}
		case *http2.GoAwayFrame:
			a.goAway, a.goAwayErr = true, f.ErrCode
			return a
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				a.rst = f.ErrCode
				return a
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == stream {
				a.status = f.PseudoValue("status")
				if f.StreamEnded() {
					return a
				}
			}
		case *http2.DataFrame:
			if f.StreamID == stream {
				if a.firstData < 0 {
					a.firstData = len(f.Data())
				}
				a.body += string(f.Data())
				if len(f.Data()) > 0 {
					require.NoError(h.t, h.fr.WriteWindowUpdate(0, uint32(len(f.Data()))))
					require.NoError(h.t, h.fr.WriteWindowUpdate(stream, uint32(len(f.Data()))))
				}
				if f.StreamEnded() {
					return a
				}
			}
		}
	}
}

func startTLSNode(t *testing.T, o *countingOrigin) string {
	t.Helper()
	t.Setenv(tokenEnv, "")
	certFile, keyFile, _ := selfSigned(t)
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile)
	return strings.TrimPrefix(tn.url, "http://")
}

func cacheableOrigin(t *testing.T) *countingOrigin {
	return newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "object "+r.URL.Path)
	})
}

// TestH2ConnectionSpecificFieldsRefused: a request with a field HTTP/2
// forbids (RFC 9113 §8.2.2) is reset with PROTOCOL_ERROR and never reaches
// the origin, where an HTTP/1.1 hop would act on it (request smuggling);
// the connection goes on serving.
func TestH2ConnectionSpecificFieldsRefused(t *testing.T) {
	o := cacheableOrigin(t)
	addr := startTLSNode(t, o)
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"connection", []string{"connection", "keep-alive"}},
		{"keep-alive", []string{"keep-alive", "timeout=5"}},
		{"proxy-connection", []string{"proxy-connection", "keep-alive"}},
		{"transfer-encoding", []string{"transfer-encoding", "chunked"}},
		{"upgrade", []string{"upgrade", "h2c"}},
		{"te gzip", []string{"te", "gzip"}},
		{"te trailers, gzip", []string{"te", "trailers, gzip"}},
		{"te twice", []string{"te", "trailers", "te", "trailers"}},
		{"after a regular field", []string{"accept", "*/*", "transfer-encoding", "chunked", "user-agent", "x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := dialH2(t, addr)
			path := "/refused/" + strings.ReplaceAll(tt.name, " ", "-")
			h.get(1, path, tt.extra...)
			a := h.answer(1)
			assert.Equal(t, http2.ErrCodeProtocol, a.rst, "answer %+v", a)
			// Again, now that the encoder indexed the field: the guard
			// follows the dynamic table.
			h.get(3, path, tt.extra...)
			assert.Equal(t, http2.ErrCodeProtocol, h.answer(3).rst)
			h.get(5, "/fine")
			a = h.answer(5)
			assert.Equal(t, "200", a.status, "the connection still serves: %+v", a)
			assert.Equal(t, "object /fine", a.body)
			assert.Equal(t, 0, o.count(path), "refused requests never reach the origin")
		})
	}
}

// TestH2AllowedFields: TE: trailers is the one connection-ish field
// HTTP/2 allows; padded, prioritised and continued header blocks are read
// correctly.
func TestH2AllowedFields(t *testing.T) {
	o := cacheableOrigin(t)
	addr := startTLSNode(t, o)
	h := dialH2(t, addr)

	h.get(1, "/te", "te", "trailers")
	a := h.answer(1)
	assert.Equal(t, "200", a.status, "%+v", a)
	assert.Equal(t, "object /te", a.body)

	require.NoError(t, h.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: 3, BlockFragment: h.block("/padded", "accept", "*/*"), EndStream: true, EndHeaders: true,
		PadLength: 7, Priority: http2.PriorityParam{StreamDep: 0, Weight: 200},
	}))
	a = h.answer(3)
	assert.Equal(t, "object /padded", a.body, "%+v", a)

	// A block split over HEADERS and CONTINUATION, forbidden field in the
	// second part, then the same split without it.
	for i, extra := range [][]string{{"accept", "*/*", "connection", "close"}, {"accept", "*/*"}} {
		stream := uint32(5 + 2*i)
		blk := h.block("/split", extra...)
		require.NoError(t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: blk[:len(blk)/2], EndStream: true}))
		require.NoError(t, h.fr.WriteContinuation(stream, true, blk[len(blk)/2:]))
		a = h.answer(stream)
		if i == 0 {
			assert.Equal(t, http2.ErrCodeProtocol, a.rst, "%+v", a)
		} else {
			assert.Equal(t, "object /split", a.body, "%+v", a)
		}
	}
	assert.Equal(t, 1, o.count("/split"))
}

// TestH2SettingsDuplicates: values of one setting repeated in a SETTINGS
// frame are processed in order (RFC 9113 §6.5.3): the last initial window
// of 1 byte holds, instead of the connection being closed.
func TestH2SettingsDuplicates(t *testing.T) {
	o := cacheableOrigin(t)
	addr := startTLSNode(t, o)
	h := dialH2(t, addr,
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
	)
	h.get(1, "/window")
	a := h.answer(1)
	assert.False(t, a.goAway, "%+v", a)
	assert.Equal(t, "200", a.status)
	assert.Equal(t, 1, a.firstData, "a 1-byte window: DATA of 1 byte at a time")
	assert.Equal(t, "object /window", a.body)
}

// TestH2OversizedHeaders: a HEADERS frame above the SETTINGS_MAX_FRAME_SIZE
// the node advertises is a connection error (RFC 9113 §4.2), not a request.
func TestH2OversizedHeaders(t *testing.T) {
	o := cacheableOrigin(t)
	addr := startTLSNode(t, o)
	h := dialH2(t, addr)
	var extra []string
	for i := range 5 {
		extra = append(extra, "x-big-"+string(rune('a'+i)), strings.Repeat("v", 4000))
	}
	blk := h.block("/big", extra...)
	require.Greater(t, len(blk), h2MaxFrame)
	require.NoError(t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true}))
	a := h.answer(1)
	assert.True(t, a.goAway, "%+v", a)
	assert.Equal(t, http2.ErrCodeFrameSize, a.goAwayErr)
	assert.Equal(t, 0, o.count("/big"))
}

// clientStream is what an HTTP/2 client like h2load sends on one
// connection: the preface, SETTINGS, then n GETs for one path, their
// fields indexed after the first.
func clientStream(b *testing.B, n int) []byte {
	var out, blk bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	require.NoError(b, fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}))
	enc := hpack.NewEncoder(&blk)
	for i := range n {
		blk.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1:8443"},
			{":path", "/obj/1k/hot"}, {"user-agent", "h2load nghttp2/1.52.0"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		require.NoError(b, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: blk.Bytes(), EndStream: true, EndHeaders: true}))
	}
	return out.Bytes()
}

// BenchmarkH2Guard: what reading a request's frames through h2Guard costs
// beyond reading them (the HTTP/2 server reads a frame header, then its
// payload).
func BenchmarkH2Guard(b *testing.B) {
	const perConn = 1000
	stream := clientStream(b, perConn)
	for _, guarded := range []bool{false, true} {
		name := "plain"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(stream) / perConn))
			var r io.Reader
			hdr := make([]byte, 9)
			payload := make([]byte, 16<<10)
			left := 0
			for b.Loop() {
				if left == 0 {
					r = bytes.NewReader(stream)
					if guarded {
						g := newH2Guard(nil)
						g.src = r
						r = g
					}
					io.ReadFull(r, make([]byte, len(http2.ClientPreface)))
					io.ReadFull(r, hdr) // SETTINGS
					io.ReadFull(r, payload[:int(hdr[2])])
					left = perConn
				}
				if _, err := io.ReadFull(r, hdr); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, payload[:int(hdr[1])<<8|int(hdr[2])]); err != nil {
					b.Fatal(err)
				}
				left--
			}
		})
	}
}
