package origin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Bucket makes a Pool's servers the endpoint of an S3-compatible bucket
// (AWS S3, Cloudflare R2, Google Cloud Storage's XML API, MinIO). Requests
// are signed with AWS Signature Version 4 (the aws-sdk-go-v2 signer) for
// the s3 service; GET and HEAD are the only methods sent; the query is
// dropped and only the request fields a bucket acts on are sent (Range,
// the If-* preconditions and Accept-Encoding, plus RequestHeaders.Add), so a
// client can neither list the bucket nor reach another API through the
// edge's credentials. The Pool's servers are the endpoint without a path
// ("https://s3.eu-west-1.amazonaws.com"); PathPrefix is a folder in the
// bucket.
type Bucket struct {
	// Name is the bucket's name: 3 to 222 lowercase letters, digits, dots,
	// hyphens or underscores. Required.
	Name string
	// Region is the signing region: the bucket's AWS region, "auto" for R2
	// and GCS. Empty means "us-east-1" (also MinIO's default).
	Region string
	// PathStyle addresses objects as https://endpoint/bucket/key rather
	// than https://bucket.endpoint/key (virtual-hosted). MinIO needs it,
	// and so does a name with dots over https, which no wildcard
	// certificate of the endpoint covers.
	PathStyle bool
	// Credentials sign the requests; typically the provider of
	// aws-sdk-go-v2/config's LoadDefaultConfig, the SDK's standard chain
	// (environment, shared files, instance and container roles). Nil sends
	// requests unsigned, for a public bucket. A provider that is not an
	// *aws.CredentialsCache is wrapped in one. Credentials are never
	// logged nor put in errors.
	Credentials aws.CredentialsProvider
	// NegativeTTL is how long a 403 or 404 from the bucket may be served
	// from cache: its Cache-Control becomes "max-age=<seconds>,
	// must-revalidate" (and Expires, Surrogate-Control and
	// CDN-Cache-Control are removed), so a missing object or a permission
	// being fixed is seen again soon, whatever the bucket said and whatever
	// the edge's stale policies. Zero means 10s; negative means no-store.
	NegativeTTL time.Duration
}

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// bucketFields are the request fields a bucket request keeps.
var bucketFields = [...]string{
	"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Accept-Encoding",
}

// bucket is a Pool's signing layer. It is safe for concurrent use.
type bucket struct {
	name      string
	region    string
	pathStyle bool
	creds     aws.CredentialsProvider // nil: anonymous
	signer    *v4.Signer
	negative  string   // the Cache-Control of 403 and 404 responses
	extra     []string // RequestHeaders.Add names, canonical
	now       func() time.Time
	log       *slog.Logger

	signed, credFailures, refused, negatives atomic.Uint64
	credsDown                                atomic.Bool
}

func newBucket(b Bucket, add map[string]string, log *slog.Logger) (*bucket, error) {
	if err := validBucketName(b.Name); err != nil {
		return nil, err
	}
	if b.Region == "" {
		b.Region = "us-east-1"
	}
	if strings.ContainsAny(b.Region, "/ \t\r\n") {
		return nil, fmt.Errorf("bucket.region %q: not a region", b.Region)
	}
	switch {
	case b.NegativeTTL == 0:
		b.NegativeTTL = 10 * time.Second
	case b.NegativeTTL > 0 && b.NegativeTTL < time.Second:
		return nil, fmt.Errorf("bucket.negative_ttl %v: under a second (Cache-Control counts seconds)", b.NegativeTTL)
	}
	bk := &bucket{
		name:      b.Name,
		region:    b.Region,
		pathStyle: b.PathStyle,
		creds:     b.Credentials,
		negative:  "no-store",
		now:       time.Now,
		log:       log,
		// S3 takes the path as it is sent: no second escaping
		// (DisableURIPathEscaping), and escape writes the sent path.
		signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
	}
	if b.NegativeTTL > 0 {
		bk.negative = "max-age=" + strconv.FormatInt(int64(b.NegativeTTL/time.Second), 10) + ", must-revalidate"
	}
	if bk.creds != nil {
		if _, ok := bk.creds.(*aws.CredentialsCache); !ok {
			bk.creds = aws.NewCredentialsCache(bk.creds)
		}
	}
	for name := range add {
		bk.extra = append(bk.extra, http.CanonicalHeaderKey(name))
	}
	return bk, nil
}

func validBucketName(name string) error {
	if len(name) < 3 || len(name) > 222 {
		return fmt.Errorf("bucket.name %q: want 3 to 222 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '.' && c != '-' && c != '_' || i == 0 || i == len(name)-1) {
			return fmt.Errorf("bucket.name %q: lowercase letters, digits, and '.', '-' or '_' between them", name)
		}
	}
	return nil
}

// virtualHost returns a server URL for a virtual-hosted bucket: the
// bucket's name as a label in front of the endpoint's host.
func (b *bucket) virtualHost(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return endpoint, nil // newServer reports it
	}
	if u.Scheme == "https" && strings.Contains(b.name, ".") {
		b.log.Warn("bucket: a name with dots is not covered by the endpoint's wildcard certificate; set path_style if TLS fails", "bucket", b.name)
	}
	u.Host = b.name + "." + u.Host
	return u.String(), nil
}

// roundTrip answers what must not reach the bucket, sends the rest through
// send and bounds the freshness of its 403 and 404 answers.
func (b *bucket) roundTrip(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	switch {
	case req.Method != http.MethodGet && req.Method != http.MethodHead:
		b.refused.Add(1)
		resp := b.local(req, http.StatusMethodNotAllowed)
		resp.Header["Allow"] = []string{"GET, HEAD"}
		return resp, nil
	case req.URL.Path == "" || req.URL.Path == "/":
		// The bucket's root lists its keys: no object lives there.
		b.refused.Add(1)
		return b.local(req, http.StatusNotFound), nil
	}
	resp, err := send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound {
		b.negatives.Add(1)
		for _, k := range [...]string{"Expires", "Surrogate-Control", "Cdn-Cache-Control"} {
			delete(resp.Header, k)
		}
		resp.Header["Cache-Control"] = []string{b.negative}
	}
	return resp, nil
}

// local is a response made here, without asking the bucket.
func (b *bucket) local(req *http.Request, code int) *http.Response {
	body := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	return &http.Response{
		Status:     strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode: code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"text/plain; charset=utf-8"},
			"Content-Length": {strconv.Itoa(len(body))},
			"Cache-Control":  {b.negative},
			"Date":           {time.Now().UTC().Format(http.TimeFormat)},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// sign turns out, already rewritten for a server, into the request the
// bucket receives: the kept fields only, the bucket in the path when
// path-style, the path escaped as SigV4 canonicalises it for S3 (so what is
// sent is what was signed), no query, and the signature headers.
func (b *bucket) sign(ctx context.Context, out *http.Request) error {
	hdr := make(http.Header, len(bucketFields)+5)
	for _, k := range bucketFields {
		if v, ok := out.Header[k]; ok {
			hdr[k] = v
		}
	}
	for _, k := range b.extra {
		if v, ok := out.Header[k]; ok {
			hdr[k] = v
		}
	}
	hdr["User-Agent"] = []string{"outpost"}
	hdr["X-Amz-Content-Sha256"] = []string{emptySHA256}
	out.Header = hdr

	u := new(url.URL)
	*u = *out.URL
	path := u.Path
	if b.pathStyle {
		path = "/" + b.name + path
	}
	u.Path, u.RawPath = path, escapeKey(path)
	u.RawQuery, u.ForceQuery = "", false
	out.URL = u
	if out.Body != nil && out.Body != http.NoBody {
		return fmt.Errorf("bucket %s: a %s with a body is not sent", b.name, out.Method)
	}
	if b.creds == nil {
		return nil
	}
	creds, err := b.creds.Retrieve(ctx)
	if err != nil {
		b.credFailures.Add(1)
		if !b.credsDown.Swap(true) {
			b.log.Error("bucket: no credentials to sign with", "bucket", b.name, "err", err)
		}
		return fmt.Errorf("bucket %s: credentials: %w", b.name, err)
	}
	if b.credsDown.Swap(false) {
		b.log.Info("bucket: credentials available again", "bucket", b.name)
	}
	if err := b.signer.SignHTTP(ctx, creds, out, emptySHA256, "s3", b.region, b.now()); err != nil {
		return fmt.Errorf("bucket %s: sign: %w", b.name, err)
	}
	b.signed.Add(1)
	return nil
}

// escapeKey escapes a decoded path as SigV4's UriEncode does for S3: every
// byte but the unreserved characters (RFC 3986 §2.3) and "/" as %XX, hex in
// upper case. S3 decodes the path it receives and signs the key so encoded,
// so sending exactly this form keeps the two equal.
func escapeKey(path string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(path); i++ {
		if !keyChar(path[i]) {
			clean = false
			break
		}
	}
	if clean {
		return path
	}
	var sb strings.Builder
	sb.Grow(len(path) + 16)
	for i := 0; i < len(path); i++ {
		c := path[i]
		if keyChar(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

func keyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
}
