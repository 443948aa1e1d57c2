package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outpost-cdn/outpost/access"
)

// startConfigNode starts a node from a YAML configuration.
func startConfigNode(t *testing.T, yaml string) *testNode {
	t.Helper()
	t.Setenv(tokenEnv, "")
	return startNode(t, "--config", writeFile(t, "outpost.yaml", yaml))
}

// TestAccessConfigErrors: a bad bucket or access block exits 2 naming the
// field and its line.
func TestAccessConfigErrors(t *testing.T) {
	dir := t.TempDir()
	shortKey := filepath.Join(dir, "short.key")
	require.NoError(t, os.WriteFile(shortKey, []byte("short\n"), 0o600))
	host := "hosts:\n  - names: [m.example]\n    origins: [\"http://o\"]\n"
	for _, tt := range []struct {
		name     string
		giveYAML string
		want     []string
	}{
		{"unknown key in a block", host + "    rate_limit:\n      client: { requests: 5, brust: 10 }\n", []string{"line 5", "brust"}},
		{"no limit", host + "    rate_limit: { max_clients: 10 }\n", []string{"line 4", "hosts[0].rate_limit", "no limit"}},
		{"bad rate", host + "    rate_limit:\n      client: { requests: -2 }\n", []string{"line 5", "hosts[0].rate_limit.client.requests"}},
		{"bad bandwidth", host + "    rate_limit:\n      client: { bandwidth: fast }\n", []string{"line 5", "hosts[0].rate_limit.client.bandwidth", "fast"}},
		{"limit_rate without rate", host + "    rate_limit:\n      limit_rate: { after: 1MiB }\n", []string{"hosts[0].rate_limit.limit_rate.rate"}},
		{"no key files", host + "    signed_urls: { paths: [/p/] }\n", []string{"line 4", "hosts[0].signed_urls.key_files"}},
		{"short key", host + "    signed_urls: { key_files: [" + shortKey + "] }\n", []string{"line 4", "hosts[0].signed_urls.key_files[0]", "at least 16"}},
		{"missing key file", host + "    signed_urls: { key_files: [/nonexistent/key] }\n", []string{"line 4", "hosts[0].signed_urls.key_files[0]"}},
		{"referer with scheme", host + "    hotlink:\n      referers: [example.com, \"https://b.example\"]\n", []string{"line 5", "hosts[0].hotlink.referers[1]"}},
		{"bucket without name", host + "    bucket: { region: eu-west-1 }\n", []string{"line 4", "hosts[0].bucket.name"}},
		{"bad bucket name", host + "    bucket: { name: My_Bucket }\n", []string{"line 4", "hosts[0].bucket", "My_Bucket"}},
		{"bad negative ttl", host + "    bucket: { name: media, negative_ttl: 10ms }\n", []string{"line 4", "hosts[0].bucket.negative_ttl"}},
		{"bucket and client host header", host + "    host_header: client\n    bucket: { name: media }\n", []string{"line 4", "hosts[0].host_header"}},
		{"bad trusted proxy", "trusted_proxies: [10.0.0.0/8, nowhere]\n" + host, []string{"line 1", "trusted_proxies[1]", "nowhere"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--config", writeFile(t, "outpost.yaml", tt.giveYAML)}, &stdout, &stderr)
			assert.Equal(t, 2, code, "exit status; stderr: %s", stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}
		})
	}
}

// fakeS3 is an in-process S3 server (gofakes3) that counts requests and
// notes the Authorization of the last one.
type fakeS3 struct {
	*httptest.Server
	backend *s3mem.Backend
	mu      sync.Mutex
	hits    int
	auth    string
}

func newFakeS3(t testing.TB, bucket string) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	require.NoError(t, f.backend.CreateBucket(bucket))
	s3 := gofakes3.New(f.backend).Server()
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits++
		f.auth = r.Header.Get("Authorization")
		f.mu.Unlock()
		s3.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeS3) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// awsEnv gives the SDK's standard chain credentials in the environment and
// nothing else to find (no files, no instance metadata).
func awsEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMTHEENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-the-env")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// TestBucketHost: a host whose origin is a bucket, signed with the SDK's
// credential chain, caches objects like any origin's, revalidates them
// with 304s, and keeps a missing object's 404 for the negative TTL only.
func TestBucketHost(t *testing.T) {
	awsEnv(t)
	s3 := newFakeS3(t, "media")
	put := func(key, body string, meta map[string]string) {
		meta["Content-Type"] = "video/mp4"
		meta["Last-Modified"] = time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
		_, err := s3.backend.PutObject("media", key, meta, strings.NewReader(body), int64(len(body)), nil)
		require.NoError(t, err)
	}
	put("films/intro.mp4", "intro film", map[string]string{"Cache-Control": "max-age=300"})
	put("films/trailer.mp4", "trailer", map[string]string{"Cache-Control": "max-age=0"})
	tn := startConfigNode(t, fmt.Sprintf(`
hosts:
  - names: [media.example]
    origins: [%q]
    bucket: { name: media, path_style: true, negative_ttl: 30s }
`, s3.URL))

	resp, body := fetch(t, tn.url+"/films/intro.mp4", "Host", "media.example")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "intro film", body)
	s3.mu.Lock()
	assert.True(t, strings.HasPrefix(s3.auth, "AWS4-HMAC-SHA256 Credential=AKIDFROMTHEENV/"), "signed with the environment's key: %q", s3.auth)
	s3.mu.Unlock()
	resp, _ = fetch(t, tn.url+"/films/intro.mp4", "Host", "media.example")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, 1, s3.count())

	for i, want := range []string{"fwd=miss", "fwd=stale; fwd-status=304"} {
		resp, body = fetch(t, tn.url+"/films/trailer.mp4", "Host", "media.example")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "request %d", i)
		assert.Equal(t, "trailer", body, "request %d", i)
		assert.Contains(t, resp.Header.Get("Cache-Status"), want, "request %d", i)
	}
	assert.Equal(t, 3, s3.count())

	for i, want := range []string{"fwd=miss", "hit"} {
		resp, _ = fetch(t, tn.url+"/films/missing.mp4", "Host", "media.example")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "request %d", i)
		assert.Contains(t, resp.Header.Get("Cache-Status"), want, "request %d", i)
	}
	assert.Contains(t, resp.Header.Get("Cache-Status"), "ttl=", "cached for the negative TTL")
	assert.Equal(t, 4, s3.count())

	resp, _ = fetch(t, tn.admin+"/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, metrics := fetch(t, tn.admin+"/metrics")
	assert.Contains(t, metrics, `outpost_origin_bucket_signed_total{pool="media.example"} 4`)
	assert.Contains(t, metrics, `outpost_origin_bucket_negative_total{pool="media.example"} 1`)
}

// signKey writes a signing key file.
func signKey(t *testing.T, key string) string {
	t.Helper()
	return writeFile(t, "url.key", key+"\n")
}

// TestSignedURLHost: only signed URLs reach the origin, and every signed
// URL of an object shares one cached copy, fetched without the token.
func TestSignedURLHost(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Content-Type", "video/mp4")
		io.WriteString(w, "premium "+r.URL.RawQuery)
	})
	key := "a-signing-key-for-the-test"
	tn := startConfigNode(t, fmt.Sprintf(`
hosts:
  - names: [m.example]
    origins: [%q]
    signed_urls: { key_files: [%q], paths: [/premium/] }
`, o.URL, signKey(t, key)))
	base := tn.url + "/premium/film.mp4?quality=hd"
	sign := func(ttl time.Duration) string {
		s, err := access.Sign(base, []byte(key), access.Token{Expires: time.Now().Add(ttl)})
		require.NoError(t, err)
		return s
	}

	resp, body := fetch(t, sign(time.Hour), "Host", "m.example")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "premium quality=hd", body, "the origin saw the query without the token")
	resp, body = fetch(t, sign(2*time.Hour), "Host", "m.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "premium quality=hd", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "another signed URL of the same object")

	for _, u := range []string{base, sign(-time.Minute), strings.Replace(sign(time.Hour), "film", "other", 1)} {
		resp, body = fetch(t, u, "Host", "m.example")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, u)
		assert.Equal(t, "403 Forbidden\n", body)
	}
	resp, _ = fetch(t, tn.url+"/free.txt", "Host", "m.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "outside the signed paths")
	assert.Equal(t, int64(2), o.total.Load(), "the film once, the free file once")

	_, metrics := fetch(t, tn.admin+"/metrics")
	assert.Contains(t, metrics, `outpost_access_allowed_total{host="m.example",rule="signed_url"} 2`)
	assert.Contains(t, metrics, `outpost_access_denied_total{host="m.example",reason="missing",rule="signed_url"} 1`)
	assert.Contains(t, metrics, `outpost_access_denied_total{host="m.example",reason="expired",rule="signed_url"} 1`)
	assert.Contains(t, metrics, `outpost_access_denied_total{host="m.example",reason="invalid",rule="signed_url"} 1`)
}

// TestRateLimitAndHotlinkHost: a client over its rate gets 429 with
// Retry-After; the client is the one a trusted proxy names; a foreign
// Referer gets 403; none of them reaches the origin.
func TestRateLimitAndHotlinkHost(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Content-Type", "image/jpeg")
		io.WriteString(w, "image")
	})
	tn := startConfigNode(t, fmt.Sprintf(`
trusted_proxies: [127.0.0.1]
hosts:
  - names: [img.example]
    origins: [%q]
    rate_limit:
      client: { requests: 0.01, burst: 2 }
    hotlink:
      referers: [example.com, "*.example.com"]
`, o.URL))
	get := func(client, referer string) *http.Response {
		resp, _ := fetch(t, tn.url+"/a.jpg", "Host", "img.example", "X-Forwarded-For", client, "Referer", referer)
		return resp
	}
	assert.Equal(t, http.StatusOK, get("198.51.100.1", "https://www.example.com/").StatusCode)
	assert.Equal(t, http.StatusOK, get("198.51.100.1", "").StatusCode, "no Referer is allowed by default")
	resp := get("198.51.100.1", "https://www.example.com/")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "100", resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, get("198.51.100.2", "https://example.com/page").StatusCode, "another client behind the proxy")
	assert.Equal(t, http.StatusForbidden, get("198.51.100.3", "https://elsewhere.example/").StatusCode)
	assert.Equal(t, int64(1), o.total.Load())

	_, metrics := fetch(t, tn.admin+"/metrics")
	assert.Contains(t, metrics, `outpost_access_denied_total{host="img.example",reason="client_requests",rule="rate_limit"} 1`)
	assert.Contains(t, metrics, `outpost_access_denied_total{host="img.example",reason="referer",rule="hotlink"} 1`)
	assert.Contains(t, metrics, `outpost_rate_limit_clients{host="img.example",table="client"} 3`)
}

// TestSignCommand: `outpost sign URL --ttl 1h` prints a URL the host
// accepts, with the key from a file, the environment or the host entry.
func TestSignCommand(t *testing.T) {
	key := "a-signing-key-for-the-test"
	keyFile := signKey(t, key)
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf(`
hosts:
  - names: ["*.example.com"]
    origins: ["http://o"]
    signed_urls: { key_files: [%q] }
  - names: [other.example]
    origins: ["http://o"]
`, keyFile))
	p, err := access.New(access.Config{SignedURLs: access.SignedURLs{Keys: [][]byte{[]byte(key)}}})
	require.NoError(t, err)
	admitted := func(u string) bool {
		r := httptest.NewRequest(http.MethodGet, u, nil)
		_, ok := p.Admit(httptest.NewRecorder(), r)
		return ok
	}
	t.Setenv(signKeyEnv, "")
	for _, tt := range []struct {
		name     string
		giveArgs []string
		giveEnv  string
		wantCode int
		wantErr  string
	}{
		{"key file, flags after the URL", []string{"https://v.example.com/a.mp4", "--ttl", "1h", "--key-file", keyFile}, "", 0, ""},
		{"environment", []string{"--ttl", "10m", "https://v.example.com/a.mp4"}, key, 0, ""},
		{"host entry", []string{"--config", cfg, "https://v.example.com/a.mp4", "--prefix", "/"}, "", 0, ""},
		{"host without signed URLs", []string{"--config", cfg, "https://other.example/a.mp4"}, "", 2, "hosts[1].signed_urls"},
		{"no key", []string{"https://v.example.com/a.mp4"}, "", 2, "no key"},
		{"no URL", []string{"--key-file", keyFile}, "", 2, "exactly one URL"},
		{"bad ttl", []string{"https://v.example.com/a", "--ttl", "-1h", "--key-file", keyFile}, "", 2, "--ttl"},
		{"bad prefix", []string{"https://v.example.com/a", "--prefix", "/b/", "--key-file", keyFile}, "", 2, "prefix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(signKeyEnv, tt.giveEnv)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"sign"}, tt.giveArgs...), &stdout, &stderr)
			require.Equal(t, tt.wantCode, code, "stderr: %s", stderr.String())
			if tt.wantCode != 0 {
				assert.Contains(t, stderr.String(), tt.wantErr)
				return
			}
			u := strings.TrimSpace(stdout.String())
			assert.True(t, strings.HasPrefix(u, "https://v.example.com/a.mp4?exp="), u)
			assert.True(t, admitted(u), "the host accepts %s", u)
		})
	}
}

// TestREADMESigningVector: the test vector the README gives application
// developers is what Outpost computes.
func TestREADMESigningVector(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	key := []byte("outpost-example-key-2026")
	exp := time.Unix(1798761600, 0)
	for _, tok := range []access.Token{{Expires: exp}, {Expires: exp, Prefix: "/videos/", IP: "203.0.113.7"}} {
		u, err := access.Sign("https://media.example.com/videos/intro.mp4", key, tok)
		require.NoError(t, err)
		_, sig, _ := strings.Cut(u, "sig=")
		assert.Contains(t, string(readme), "sig="+sig, "the README's vector for %+v", tok)
	}
	assert.Contains(t, string(readme), "https://media.example.com/videos/intro.mp4?exp=1798761600&prefix=/videos/&ip=203.0.113.7&sig=")
}
