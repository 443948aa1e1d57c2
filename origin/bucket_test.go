package origin

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testAccess = "AKIDOUTPOSTTEST"
	testSecret = "outpost/test/secret+never/logged"
)

// fakeBucket is an in-process S3 server (gofakes3) behind a SigV4 check:
// a request whose signature is not right gets S3's 403
// SignatureDoesNotMatch and never reaches the store.
type fakeBucket struct {
	*httptest.Server
	name      string
	backend   *s3mem.Backend
	vf        sigv4Verifier
	anonymous bool // unsigned requests are let through (a public bucket)
	hits      atomic.Int64
	mu        sync.Mutex
	reqs      []*http.Request
	seen      chan *http.Request // every request, when set
}

// newFakeBucket serves bucket name path-style, or virtual-hosted when
// vhost: the bucket is then the first label of the Host.
func newFakeBucket(t *testing.T, name string, vhost bool) *fakeBucket {
	t.Helper()
	fb := &fakeBucket{name: name, backend: s3mem.New()}
	fb.vf = sigv4Verifier{access: testAccess, secret: testSecret, region: "us-east-1", service: "s3", now: time.Now}
	require.NoError(t, fb.backend.CreateBucket(name))
	var opts []gofakes3.Option
	if vhost {
		opts = append(opts, gofakes3.WithHostBucket(true))
	}
	s3 := gofakes3.New(fb.backend, opts...).Server()
	fb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fb.hits.Add(1)
		fb.mu.Lock()
		fb.reqs = append(fb.reqs, r.Clone(context.Background()))
		seen := fb.seen
		fb.mu.Unlock()
		if seen != nil {
			seen <- r.Clone(context.Background())
		}
		if r.Header.Get("Authorization") != "" || !fb.anonymous {
			if err := fb.vf.verify(r, r.Header.Get("X-Amz-Content-Sha256")); err != nil {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>", err)
				return
			}
		}
		s3.ServeHTTP(w, r)
	}))
	t.Cleanup(fb.Close)
	return fb
}

func (fb *fakeBucket) put(t *testing.T, key, body string, meta map[string]string) {
	t.Helper()
	if meta == nil {
		meta = map[string]string{}
	}
	if _, ok := meta["Content-Type"]; !ok {
		meta["Content-Type"] = "video/mp4"
	}
	meta["Last-Modified"] = time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	_, err := fb.backend.PutObject(fb.name, key, meta, strings.NewReader(body), int64(len(body)), nil)
	require.NoError(t, err)
}

func (fb *fakeBucket) last(t *testing.T) *http.Request {
	t.Helper()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	require.NotEmpty(t, fb.reqs, "the bucket received no request")
	return fb.reqs[len(fb.reqs)-1]
}

// bucketPool returns a Pool for fb with cfg's bucket settings: path-style
// at fb's address, or virtual-hosted, where the endpoint "0.0.1:port"
// with the bucket "127" in front makes 127.0.0.1:port, so the name really
// is put in the host and the test needs no DNS.
func bucketPool(t *testing.T, fb *fakeBucket, b Bucket, mod ...func(*Config)) *Pool {
	t.Helper()
	b.Name = fb.name
	endpoint := fb.URL
	if !b.PathStyle {
		require.Equal(t, "127", fb.name, "a virtual-hosted test bucket is called 127")
		endpoint = strings.Replace(fb.URL, "127.0.0.1", "0.0.1", 1)
	}
	if b.Credentials == nil && !fb.anonymous {
		b.Credentials = staticCreds(testAccess, testSecret)
	}
	cfg := Config{Name: "media", Origins: []Server{{URL: endpoint}}, Bucket: &b}
	for _, m := range mod {
		m(&cfg)
	}
	return newTestPool(t, cfg)
}

// bucketGet sends a request for the cache URL through rt.
func bucketGet(t *testing.T, rt http.RoundTripper, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func md5ETag(s string) string {
	sum := md5.Sum([]byte(s))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// TestBucketServesObjects fetches an object whose key needs escaping from
// a path-style and a virtual-hosted bucket: the bucket checks the
// signature of exactly what was sent, and the client gets the object with
// the bucket's ETag (its MD5) and validators.
func TestBucketServesObjects(t *testing.T) {
	const key, body = "films/a b+c$(1)~é.mp4", "the film"
	for _, tt := range []struct {
		name      string
		bucket    string
		pathStyle bool
		wantPath  string
	}{
		{"path-style", "media", true, "/media/films/a%20b%2Bc%24%281%29~%C3%A9.mp4"},
		{"virtual-hosted", "127", false, "/films/a%20b%2Bc%24%281%29~%C3%A9.mp4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFakeBucket(t, tt.bucket, !tt.pathStyle)
			fb.put(t, key, body, nil)
			p := bucketPool(t, fb, Bucket{PathStyle: tt.pathStyle})

			resp, got := bucketGet(t, p, http.MethodGet, "http://media.example.com/films/a%20b+c$(1)~%C3%A9.mp4")
			require.Equal(t, http.StatusOK, resp.StatusCode, got)
			assert.Equal(t, body, got)
			assert.Equal(t, md5ETag(body), resp.Header.Get("ETag"))
			assert.NotEmpty(t, resp.Header.Get("Last-Modified"))
			assert.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))

			r := fb.last(t)
			assert.Equal(t, tt.wantPath, r.RequestURI)
			assert.Equal(t, strings.TrimPrefix(fb.URL, "http://"), r.Host, "the bucket's own host name, not the client's")
			assert.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+testAccess+"/"))
			assert.Equal(t, int64(1), fb.hits.Load())
		})
	}
}

// TestBucketRangesAndRevalidation: ranges and conditional requests reach
// the bucket signed, and its 206 and 304 come back as from any origin.
func TestBucketRangesAndRevalidation(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	fb.name = "media"
	fb2 := newFakeBucket(t, "127", true)
	for _, b := range []*fakeBucket{fb, fb2} {
		b.put(t, "v.mp4", "0123456789", nil)
	}
	for _, tt := range []struct {
		name string
		fb   *fakeBucket
		b    Bucket
	}{{"path-style", fb, Bucket{PathStyle: true}}, {"virtual-hosted", fb2, Bucket{}}} {
		t.Run(tt.name, func(t *testing.T) {
			p := bucketPool(t, tt.fb, tt.b)
			resp, body := bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4", "Range", "bytes=2-5")
			assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
			assert.Equal(t, "2345", body)
			assert.Equal(t, "bytes 2-5/10", resp.Header.Get("Content-Range"))

			etag := md5ETag("0123456789")
			resp, body = bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4", "If-None-Match", etag)
			assert.Equal(t, http.StatusNotModified, resp.StatusCode)
			assert.Empty(t, body)
			resp, _ = bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4", "If-Modified-Since", time.Now().UTC().Format(http.TimeFormat))
			assert.Equal(t, http.StatusNotModified, resp.StatusCode)
			resp, _ = bucketGet(t, p, http.MethodHead, "http://m.example.com/v.mp4")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "10", resp.Header.Get("Content-Length"))
			assert.Contains(t, tt.fb.last(t).Header.Get("Authorization"), "SignedHeaders=host;x-amz-content-sha256;x-amz-date")
			assert.Equal(t, int64(4), tt.fb.hits.Load())
		})
	}
}

// TestBucketNegativeTTL: a bucket's 404 (missing key) and 403 (no access,
// or, here, a wrong secret) are cacheable no longer than the negative TTL,
// whatever else the bucket said.
func TestBucketNegativeTTL(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	for _, tt := range []struct {
		name       string
		give       Bucket
		wantStatus int
		wantCC     string
	}{
		{"missing, default", Bucket{}, http.StatusNotFound, "max-age=10, must-revalidate"},
		{"missing, 30s", Bucket{NegativeTTL: 30 * time.Second}, http.StatusNotFound, "max-age=30, must-revalidate"},
		{"missing, off", Bucket{NegativeTTL: -1}, http.StatusNotFound, "no-store"},
		{"wrong secret", Bucket{Credentials: staticCreds(testAccess, "not-the-secret")}, http.StatusForbidden, "max-age=10, must-revalidate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.PathStyle = true
			reg := prometheus.NewRegistry()
			p := bucketPool(t, fb, tt.give, func(c *Config) { c.Registerer = reg })
			resp, _ := bucketGet(t, p, http.MethodGet, "http://m.example.com/missing.mp4")
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			assert.Equal(t, tt.wantCC, resp.Header.Get("Cache-Control"))
			assert.Empty(t, resp.Header.Get("Expires"))
			n, err := testutil.GatherAndCount(reg, "outpost_origin_bucket_negative_total")
			require.NoError(t, err)
			assert.Equal(t, 1, n)
		})
	}
}

// TestBucketAnswersWhatItMustNotAsk: other methods than GET and HEAD, and
// the bucket's root (a listing), never reach the bucket.
func TestBucketAnswersWhatItMustNotAsk(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	p := bucketPool(t, fb, Bucket{PathStyle: true})
	for _, m := range []string{http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		resp, _ := bucketGet(t, p, m, "http://m.example.com/v.mp4")
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, m)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), m)
	}
	resp, _ := bucketGet(t, p, http.MethodGet, "http://m.example.com/")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "max-age=10, must-revalidate", resp.Header.Get("Cache-Control"))
	assert.Equal(t, int64(0), fb.hits.Load())
}

// TestBucketSendsOnlyWhatABucketNeeds: the client's query (which could
// list the bucket or rewrite response headers) and fields (cookies, its own
// Authorization, x-amz-* such as an SSE-C key) stay at the edge.
func TestBucketSendsOnlyWhatABucketNeeds(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	fb.put(t, "v.mp4", "film", nil)
	p := bucketPool(t, fb, Bucket{PathStyle: true}, func(c *Config) {
		c.RequestHeaders.Add = map[string]string{"X-Amz-Expected-Bucket-Owner": "111122223333"}
	})
	resp, body := bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4?list-type=2&response-content-type=text/html&versionId=x",
		"Cookie", "session=secret", "Authorization", "Bearer client", "X-Amz-Server-Side-Encryption-Customer-Key", "abc",
		"X-Forwarded-For", "192.0.2.1", "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "video/mp4", resp.Header.Get("Content-Type"), "no response-* override")
	r := fb.last(t)
	assert.Equal(t, "/media/v.mp4", r.RequestURI)
	for _, k := range []string{"Cookie", "X-Amz-Server-Side-Encryption-Customer-Key", "X-Forwarded-For", "Cdn-Loop"} {
		assert.Empty(t, r.Header.Get(k), k)
	}
	assert.Equal(t, "gzip", r.Header.Get("Accept-Encoding"))
	assert.Equal(t, "111122223333", r.Header.Get("X-Amz-Expected-Bucket-Owner"), "the operator's own field is sent")
	assert.Contains(t, r.Header.Get("Authorization"), "x-amz-expected-bucket-owner", "and signed")
}

// TestBucketCredentials: a session token is sent and signed; a provider
// that fails sends nothing, fails the request with an *Error, logs once,
// and no log line or error ever holds the secret.
func TestBucketCredentials(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	fb.put(t, "v.mp4", "film", nil)
	var logs logBuffer
	var fail atomic.Bool
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		if fail.Load() {
			return aws.Credentials{}, errors.New("no EC2 IMDS role found")
		}
		return aws.Credentials{AccessKeyID: testAccess, SecretAccessKey: testSecret, SessionToken: "token-1",
			CanExpire: true, Expires: time.Now().Add(time.Second)}, nil
	})
	p := bucketPool(t, fb, Bucket{PathStyle: true, Credentials: creds}, func(c *Config) { c.Logger = logs.logger() })

	resp, _ := bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r := fb.last(t)
	assert.Equal(t, "token-1", r.Header.Get("X-Amz-Security-Token"))
	assert.Contains(t, r.Header.Get("Authorization"), "x-amz-security-token")

	fail.Store(true)
	p.g.bucket.creds.(*aws.CredentialsCache).Invalidate()
	hits := fb.hits.Load()
	for range 3 {
		req, err := http.NewRequest(http.MethodGet, "http://m.example.com/v.mp4", nil)
		require.NoError(t, err)
		_, err = p.RoundTrip(req)
		var oe *Error
		require.ErrorAs(t, err, &oe)
		assert.Contains(t, err.Error(), "credentials")
		assert.NotContains(t, err.Error(), testSecret)
	}
	assert.Equal(t, hits, fb.hits.Load(), "nothing unsigned was sent")
	assert.Equal(t, 1, logs.count("bucket: no credentials to sign with"), logs.buf.String())
	assert.True(t, p.Servers()[0].Up, "no credentials is no failure of the bucket's")

	fail.Store(false)
	p.g.bucket.creds.(*aws.CredentialsCache).Invalidate()
	resp, _ = bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, logs.count("bucket: credentials available again"))
	assert.NotContains(t, logs.buf.String(), testSecret)
}

// TestBucketAnonymous: without credentials, requests go unsigned to a
// public bucket.
func TestBucketAnonymous(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	fb.anonymous = true
	fb.put(t, "v.mp4", "film", nil)
	p := bucketPool(t, fb, Bucket{PathStyle: true})
	resp, body := bucketGet(t, p, http.MethodGet, "http://m.example.com/v.mp4")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "film", body)
	assert.Empty(t, fb.last(t).Header.Get("Authorization"))
}

// TestBucketHealthCheckIsSigned: an active check asks for its object in
// the bucket, signed like a client's request.
func TestBucketHealthCheckIsSigned(t *testing.T) {
	fb := newFakeBucket(t, "media", false)
	fb.put(t, "health.txt", "ok", nil)
	fb.seen = make(chan *http.Request, 1)
	bucketPool(t, fb, Bucket{PathStyle: true}, func(c *Config) {
		c.Health = HealthCheck{Path: "/health.txt", Interval: time.Hour}
	})
	select {
	case r := <-fb.seen:
		assert.Equal(t, "/media/health.txt", r.RequestURI)
		assert.NoError(t, fb.vf.verify(r, r.Header.Get("X-Amz-Content-Sha256")))
	case <-time.After(10 * time.Second):
		t.Fatal("no health check reached the bucket")
	}
}

func TestBucketConfig(t *testing.T) {
	one := []Server{{URL: "https://s3.example.com"}}
	for _, tt := range []struct {
		name    string
		give    Config
		wantErr string
	}{
		{"no name", Config{Origins: one, Bucket: &Bucket{}}, "bucket.name"},
		{"upper case", Config{Origins: one, Bucket: &Bucket{Name: "Media"}}, "bucket.name"},
		{"leading dot", Config{Origins: one, Bucket: &Bucket{Name: ".media"}}, "bucket.name"},
		{"client host", Config{Origins: one, HostHeader: HostClient, Bucket: &Bucket{Name: "media"}}, "host_header"},
		{"endpoint path", Config{Origins: []Server{{URL: "https://s3.example.com/x"}}, Bucket: &Bucket{Name: "media", PathStyle: true}}, "must not have a path"},
		{"region", Config{Origins: one, Bucket: &Bucket{Name: "media", Region: "eu west"}}, "bucket.region"},
		{"negative ttl under a second", Config{Origins: one, Bucket: &Bucket{Name: "media", NegativeTTL: time.Millisecond}}, "bucket.negative_ttl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.give)
			if p != nil {
				p.Close()
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestEscapeKey(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{"/a/b.mp4", "/a/b.mp4"},
		{"/a b", "/a%20b"},
		{"/a+b=c&d", "/a%2Bb%3Dc%26d"},
		{"/~user/-_.", "/~user/-_."},
		{"/é", "/%C3%A9"},
		{"/a%2Fb", "/a%252Fb"},
		{"//double", "//double"},
	} {
		assert.Equal(t, tt.want, escapeKey(tt.give), "escapeKey(%q)", tt.give)
	}
}
