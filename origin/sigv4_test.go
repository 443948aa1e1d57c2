package origin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The published SigV4 test vectors: AWS's signature test suite (service
// "service", credential AKIDEXAMPLE, 2015-08-30T12:36:00Z, headers host and
// x-amz-date) and the four worked examples of the S3 API reference
// ("Signature Calculations for the Authorization Header",
// AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z, examplebucket).
type sigv4Vector struct {
	name            string
	method, rawURL  string
	header          map[string]string
	payloadHash     string
	access, secret  string
	service, region string
	at              time.Time
	want            string // the Signature
}

var (
	suiteTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	s3DocTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
)

const (
	suiteAccess = "AKIDEXAMPLE"
	suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	s3DocAccess = "AKIAIOSFODNN7EXAMPLE"
	s3DocSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var sigv4Vectors = []sigv4Vector{
	{name: "get-vanilla", method: "GET", rawURL: "https://example.amazonaws.com/",
		want: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{name: "get-vanilla-query-order-key-case", method: "GET", rawURL: "https://example.amazonaws.com/?Param2=value2&Param1=value1",
		want: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	{name: "get-vanilla-empty-query-key", method: "GET", rawURL: "https://example.amazonaws.com/?Param1=value1",
		want: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
	{name: "get-utf8", method: "GET", rawURL: "https://example.amazonaws.com/%E1%88%B4",
		want: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
	{name: "get-space", method: "GET", rawURL: "https://example.amazonaws.com/example%20space/",
		want: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
	{name: "post-vanilla", method: "POST", rawURL: "https://example.amazonaws.com/",
		want: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	{name: "post-vanilla-query", method: "POST", rawURL: "https://example.amazonaws.com/?Param1=value1",
		want: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
	{name: "s3 GET object with range", method: "GET", rawURL: "https://examplebucket.s3.amazonaws.com/test.txt",
		header: map[string]string{"Range": "bytes=0-9", "X-Amz-Content-Sha256": emptySHA256},
		want:   "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
	{name: "s3 PUT object", method: "PUT", rawURL: "https://examplebucket.s3.amazonaws.com/test%24file.text",
		header: map[string]string{
			"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
			"X-Amz-Content-Sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
		},
		payloadHash: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
		want:        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
	{name: "s3 GET bucket lifecycle", method: "GET", rawURL: "https://examplebucket.s3.amazonaws.com/?lifecycle",
		header: map[string]string{"X-Amz-Content-Sha256": emptySHA256},
		want:   "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
	{name: "s3 GET bucket list objects", method: "GET", rawURL: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
		header: map[string]string{"X-Amz-Content-Sha256": emptySHA256},
		want:   "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
}

func init() {
	for i := range sigv4Vectors {
		v := &sigv4Vectors[i]
		if strings.HasPrefix(v.name, "s3 ") {
			v.access, v.secret, v.service, v.region, v.at = s3DocAccess, s3DocSecret, "s3", "us-east-1", s3DocTime
		} else {
			v.access, v.secret, v.service, v.region, v.at = suiteAccess, suiteSecret, "service", "us-east-1", suiteTime
		}
		if v.payloadHash == "" {
			v.payloadHash = emptySHA256
		}
	}
}

// request returns the vector's request as a client sends it.
func (v *sigv4Vector) request(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(v.method, v.rawURL, nil)
	require.NoError(t, err)
	for k, val := range v.header {
		r.Header.Set(k, val)
	}
	return r
}

// signatureOf returns the Signature of an Authorization header.
func signatureOf(auth string) string {
	_, sig, _ := strings.Cut(auth, "Signature=")
	return sig
}

// TestSigV4Vectors signs every published vector with the aws-sdk-go-v2
// signer as the bucket layer configures it (no second escaping of the
// path), and checks the test's own verifier against them too, so the
// verifier that guards the fake S3 server below is itself right.
func TestSigV4Vectors(t *testing.T) {
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	passed := 0
	for _, v := range sigv4Vectors {
		t.Run(v.name, func(t *testing.T) {
			r := v.request(t)
			creds := aws.Credentials{AccessKeyID: v.access, SecretAccessKey: v.secret}
			require.NoError(t, signer.SignHTTP(context.Background(), creds, r, v.payloadHash, v.service, v.region, v.at))
			assert.Equal(t, v.want, signatureOf(r.Header.Get("Authorization")), "aws-sdk-go-v2 signer")

			// The same request as a server receives it.
			in := httptest.NewRequest(r.Method, r.URL.RequestURI(), nil)
			in.Host = r.URL.Host
			in.Header = r.Header.Clone()
			vf := sigv4Verifier{access: v.access, secret: v.secret, region: v.region, service: v.service, now: func() time.Time { return v.at }}
			assert.NoError(t, vf.verify(in, v.payloadHash), "test verifier")
			tampered := in.Clone(context.Background())
			tampered.Host = "other.example.com"
			assert.Error(t, vf.verify(tampered, v.payloadHash), "test verifier, another host")
			tampered = in.Clone(context.Background())
			tampered.Method = "DELETE"
			assert.Error(t, vf.verify(tampered, v.payloadHash), "test verifier, another method")
			if !t.Failed() {
				passed++
			}
		})
	}
	t.Logf("%d of %d published SigV4 vectors passed", passed, len(sigv4Vectors))
}

// TestBucketSignMatchesTheS3Vector: the bucket layer's own request for
// the S3 reference's GET Object example is signed as the reference says.
func TestBucketSignMatchesTheS3Vector(t *testing.T) {
	b, err := newBucket(Bucket{Name: "examplebucket", Credentials: staticCreds(s3DocAccess, s3DocSecret)}, nil, nil)
	require.NoError(t, err)
	b.now = func() time.Time { return s3DocTime }
	out, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	require.NoError(t, err)
	out.Host = out.URL.Host
	out.Header.Set("Range", "bytes=0-9")
	out.Header.Set("Cookie", "session=1")         // never sent to a bucket
	out.Header.Set("X-Amz-Meta-Evil", "injected") // nor a client's x-amz-*
	require.NoError(t, b.sign(context.Background(), out))
	assert.Equal(t, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "+
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "+
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", out.Header.Get("Authorization"))
	assert.Empty(t, out.Header.Get("Cookie"))
	assert.Empty(t, out.Header.Get("X-Amz-Meta-Evil"))
}

// sigv4Verifier checks Signature Version 4 Authorization headers the way
// S3 does, written from the specification independently of the SDK's
// signer. The canonical URI is the path as received, which must already be
// in S3's canonical encoding (each byte but unreserved ones and "/" as
// upper-case %XX): a request sent in another encoding than it was signed
// in fails, as it would at S3.
type sigv4Verifier struct {
	access, secret, region, service string
	now                             func() time.Time
}

type verifyError string

func (e verifyError) Error() string { return string(e) }

func (vf *sigv4Verifier) verify(r *http.Request, payloadHash string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return verifyError("no AWS4-HMAC-SHA256 Authorization")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	date := r.Header.Get("X-Amz-Date")
	switch {
	case len(scope) != 5 || scope[0] != vf.access || scope[2] != vf.region || scope[3] != vf.service || scope[4] != "aws4_request":
		return verifyError("credential scope " + fields["Credential"])
	case len(date) != 16 || scope[1] != date[:8]:
		return verifyError("x-amz-date " + date)
	}
	at, err := time.Parse("20060102T150405Z", date)
	if err != nil || vf.now().Sub(at).Abs() > 15*time.Minute {
		return verifyError("x-amz-date " + date + " is not now")
	}
	rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	if p, err := url.PathUnescape(rawPath); err != nil || s3Encode(p) != rawPath {
		return verifyError("path " + rawPath + " is not in canonical encoding")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return verifyError("query")
	}
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, s3EncodeAll(k)+"="+s3EncodeAll(v))
		}
	}
	sort.Strings(pairs)
	signed := strings.Split(fields["SignedHeaders"], ";")
	var canonHeaders strings.Builder
	hasHost := false
	for _, h := range signed {
		var vals []string
		if h == "host" {
			hasHost = true
			vals = []string{r.Host}
		} else {
			vals = r.Header.Values(h)
		}
		if len(vals) == 0 {
			return verifyError("signed header " + h + " is missing")
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		canonHeaders.WriteString(h + ":" + strings.Join(vals, ",") + "\n")
	}
	if !hasHost {
		return verifyError("host is not signed")
	}
	canonical := strings.Join([]string{r.Method, rawPath, strings.Join(pairs, "&"), canonHeaders.String(), fields["SignedHeaders"], payloadHash}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(sum[:])
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+vf.secret), scope[1]), scope[2]), scope[3]), "aws4_request")
	if hex.EncodeToString(mac(key, toSign)) != fields["Signature"] {
		return verifyError("SignatureDoesNotMatch")
	}
	return nil
}

// s3Encode is the specification's UriEncode with "/" kept.
func s3Encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

// s3EncodeAll is UriEncode with "/" encoded too, for query names and values.
func s3EncodeAll(s string) string { return strings.ReplaceAll(s3Encode(s), "/", "%2F") }

// staticCreds is a fixed credential provider.
func staticCreds(access, secret string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret, Source: "test"}, nil
	})
}
