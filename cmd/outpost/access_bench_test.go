package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/outpost-cdn/outpost/access"
	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/storage"
)

// benchWriter is a minimal http.ResponseWriter, so the benchmark measures
// the handler and not a recorder.
type benchWriter struct {
	h      http.Header
	status int
	n      int64
}

func (d *benchWriter) Header() http.Header         { return d.h }
func (d *benchWriter) WriteHeader(code int)        { d.status = code }
func (d *benchWriter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// staticCredentials is a fixed credential provider.
func staticCredentials(access, secret string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}, nil
	})
}

// accessBench is an edge.Handler in front of an in-process S3 server with
// one stored object, configured as a benchmark mode names: no Admit hook
// (none), a Gate holding no rules (gate), or all four features of issue 18
// on (all): the origin is a signed bucket, the URL carries a signed token
// (verified, and dropped from the cache key), the Referer is checked, and
// the client's request rate, its /24's and their bandwidth are limited
// (limits high enough never to bite, so the checks and the paced writer are
// what is measured). The request is the same in every mode.
func accessBench(b *testing.B, mode string, size int) (*edge.Handler, *http.Request) {
	b.Helper()
	key := []byte("a-signing-key-for-the-benchmark")
	body := bytes.Repeat([]byte{'x'}, size)
	s3 := newFakeS3(b, "media")
	meta := map[string]string{"Cache-Control": "max-age=3600", "Content-Type": "video/mp4",
		"Last-Modified": time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}
	if _, err := s3.backend.PutObject("media", "v/a.mp4", meta, bytes.NewReader(body), int64(size), nil); err != nil {
		b.Fatal(err)
	}
	host := edge.Host{Names: []string{"m.example"}}
	cfg := origin.Config{Origins: []origin.Server{{URL: s3.URL}}, PathPrefix: "/media"}
	switch mode {
	case "gate":
		host.Admit = access.NewGate(nil).Admit
	case "all":
		cfg.PathPrefix = ""
		cfg.Bucket = &origin.Bucket{Name: "media", PathStyle: true, Credentials: staticCredentials("AKIDBENCH", "bench-secret")}
		p, err := access.New(access.Config{
			Host:       "m.example",
			SignedURLs: access.SignedURLs{Keys: [][]byte{key}},
			Hotlink:    access.Hotlink{Referers: []string{"example.com", "*.example.com"}},
			RateLimit: access.RateLimit{
				Client: access.Limit{Requests: 1e9, Bandwidth: 1 << 40},
				Prefix: access.Limit{Requests: 1e9, Bandwidth: 1 << 40},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		host.Admit = access.NewGate(p).Admit
		host.Key.IgnoreQuery = access.TokenParams()
	}
	pool, err := origin.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Close() })
	host.Transport = pool
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	h, err := edge.New(edge.Config{Store: mem, Hosts: []edge.Host{host}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	u, err := access.Sign("http://m.example/v/a.mp4", key, access.Token{Expires: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, u, nil)
	req.RemoteAddr = "198.51.100.7:40000"
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Referer", "https://www.example.com/watch")
	w := &benchWriter{h: make(http.Header, 16)}
	h.ServeHTTP(w, req) // the miss that stores it
	if w.status != http.StatusOK || w.n != int64(size) {
		b.Fatalf("fill: status %d, %d bytes", w.status, w.n)
	}
	b.Cleanup(func() {
		if got := s3.count(); got != 1 {
			b.Errorf("%d requests reached the bucket, want the one fill", got)
		}
	})
	return h, req
}

// BenchmarkHitWithAccess serves a stored object through the real
// edge.Handler called directly (the handler's own cost) in each mode of
// accessBench: none/all is the hit-path cost of the features.
func BenchmarkHitWithAccess(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, mode := range []string{"none", "gate", "all"} {
			b.Run(strconv.Itoa(size>>10)+"KiB/"+mode, func(b *testing.B) {
				h, req := accessBench(b, mode, size)
				w := &benchWriter{h: make(http.Header, 16)}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					w.n = 0
					h.ServeHTTP(w, req)
				}
				if w.status != http.StatusOK || w.n != int64(size) {
					b.Fatalf("hit: status %d, %d bytes", w.status, w.n)
				}
			})
		}
	}
}

// BenchmarkHitWithAccessHTTP is BenchmarkHitWithAccess over HTTP/1.1 on
// loopback, keep-alive, 16 clients at once: what a client of the node
// sees, net/http on both ends included.
func BenchmarkHitWithAccessHTTP(b *testing.B) {
	for _, mode := range []string{"none", "gate", "all"} {
		b.Run("1KiB/"+mode, func(b *testing.B) {
			h, req := accessBench(b, mode, 1<<10)
			srv := httptest.NewServer(h)
			b.Cleanup(srv.Close)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			b.Cleanup(tr.CloseIdleConnections)
			url := srv.URL + req.URL.RequestURI()
			b.SetParallelism(8) // 16 clients on 2 cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r, _ := http.NewRequest(http.MethodGet, url, nil)
				r.Host = "m.example"
				r.Header = req.Header.Clone()
				for pb.Next() {
					resp, err := tr.RoundTrip(r)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || n != 1<<10 {
						b.Errorf("status %d, %d bytes", resp.StatusCode, n)
						return
					}
				}
			})
		})
	}
}
