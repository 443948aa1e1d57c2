package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignedURLs configures signed-URL checks for a host. With no Keys they are
// off.
//
// A signed URL carries four query parameters (TokenParams): exp, the Unix
// time in seconds after which it is refused; prefix, optional, a path
// prefix the token covers instead of the exact path; ip, optional, the
// client address (or CIDR) it is bound to; and sig, the unpadded base64url
// HMAC-SHA256, under a key, of
//
//	exp + "\n" + scope + "\n" + ip
//
// where scope is "path:" followed by the request path as it appears in the
// URL (percent-encoded, without the query), or "prefix:" followed by the
// prefix when the prefix parameter is present, and ip is the ip parameter's
// value or empty. The other query parameters are not signed.
type SignedURLs struct {
	// Keys verify tokens: a token signed by any of them passes, so a new
	// key can be deployed beside the old one before URLs are signed with
	// it. The first one signs (Sign). At most two; each at least 16 bytes.
	// Empty means signed URLs are off. The Policy keeps its own copy.
	Keys [][]byte
	// Paths are the path prefixes that need a token ("/premium/"). Empty
	// means every path of the host.
	Paths []string
}

// Token parameter names (see SignedURLs).
const (
	ParamExpires   = "exp"
	ParamPrefix    = "prefix"
	ParamIP        = "ip"
	ParamSignature = "sig"
)

// TokenParams returns the names of the query parameters of a signed URL.
// They must be kept out of the cache key and the upstream request (so all
// the signed URLs of an object share one cached copy): the caller adds them
// to the host's ignored query parameters. The slice is the caller's.
func TokenParams() []string {
	return []string{ParamExpires, ParamPrefix, ParamIP, ParamSignature}
}

// Token is what a signed URL grants.
type Token struct {
	// Expires is when the URL stops working (second precision).
	Expires time.Time
	// Prefix, when set, is the path prefix the token covers (it should end
	// in "/"); empty means the URL's exact path.
	Prefix string
	// IP, when set, is the client address or CIDR the token is bound to.
	IP string
}

const minKeyLen = 16

// Sign returns rawURL, an absolute URL or a path with an optional query,
// with the token's parameters added and signed by key.
func Sign(rawURL string, key []byte, t Token) (string, error) {
	if len(key) < minKeyLen {
		return "", fmt.Errorf("access: sign: key of %d bytes is shorter than %d", len(key), minKeyLen)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("access: sign: %w", err)
	}
	path := u.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("access: sign: %q has no absolute path", rawURL)
	}
	if hasDotSegment(path) {
		return "", fmt.Errorf("access: sign: path %q has . or .. segments, which are always refused", path)
	}
	scope := "path:" + path
	if t.Prefix != "" {
		if !strings.HasPrefix(t.Prefix, "/") || !strings.HasPrefix(path, t.Prefix) {
			return "", fmt.Errorf("access: sign: prefix %q: must start with / and begin the path %q", t.Prefix, path)
		}
		scope = "prefix:" + t.Prefix
	}
	if t.IP != "" {
		if _, ok := parseBinding(t.IP); !ok {
			return "", fmt.Errorf("access: sign: ip %q: want an address or a CIDR", t.IP)
		}
	}
	for _, p := range TokenParams() {
		if u.Query().Has(p) {
			return "", fmt.Errorf("access: sign: %q already has a %s parameter", rawURL, p)
		}
	}
	exp := strconv.FormatInt(t.Expires.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(exp + "\n" + scope + "\n" + t.IP))
	sig := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	q := u.RawQuery
	add := func(name, value string) {
		if q != "" {
			q += "&"
		}
		q += name + "=" + queryEscape(value)
	}
	add(ParamExpires, exp)
	if t.Prefix != "" {
		add(ParamPrefix, t.Prefix)
	}
	if t.IP != "" {
		add(ParamIP, t.IP)
	}
	add(ParamSignature, sig)
	u.RawQuery = q
	return u.String(), nil
}

// queryEscape escapes a query value as url.QueryEscape does but keeps "/"
// and ":", which a query may hold as they are (RFC 3986 §3.4), so prefixes
// and IPv6 addresses stay readable and are checked without decoding.
func queryEscape(v string) string {
	return strings.NewReplacer("%2F", "/", "%3A", ":").Replace(url.QueryEscape(v))
}

// Why a token was refused: the reason label of
// outpost_access_denied_total{rule="signed_url"}.
const (
	reasonMissing = "missing" // no exp or sig
	reasonExpired = "expired"
	reasonScope   = "path"    // the path is outside the token's prefix, or has dot segments
	reasonIP      = "ip"      // the client is not the one the token is bound to
	reasonInvalid = "invalid" // malformed, repeated parameters, or a signature no key made
)

// verifier checks signed URLs with one host's keys. It is safe for
// concurrent use.
type verifier struct {
	keys  []*macPool
	paths []string
	msgs  sync.Pool // *[]byte: the string to sign of one check
	seen  tokenCache
}

// tokenCache remembers the tokens verified lately: for each string to sign,
// the signature one of the keys made for it. A URL fetched again (the
// ranges of a video, the segments under one prefix token) then costs a map
// lookup and a constant-time comparison instead of an HMAC. Expiry and the
// client binding are checked on every request all the same; a forged
// signature is never remembered. Bounded: a full cache forgets an arbitrary
// entry.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]string
}

// tokenCacheSize bounds a host's tokenCache: at about 150 bytes an entry,
// 600 KiB.
const tokenCacheSize = 4096

func (tc *tokenCache) has(msg []byte, sig string) bool {
	tc.mu.Lock()
	good, ok := tc.m[string(msg)]
	tc.mu.Unlock()
	return ok && constantTimeEqual(good, sig)
}

func (tc *tokenCache) add(msg []byte, sig string) {
	k, v := string(msg), strings.Clone(sig)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil {
		tc.m = make(map[string]string)
	}
	if len(tc.m) >= tokenCacheSize {
		for old := range tc.m {
			delete(tc.m, old)
			break
		}
	}
	tc.m[k] = v
}

// constantTimeEqual compares two strings in time that depends on their
// length only (crypto/subtle's rule), without converting them to []byte.
func constantTimeEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var diff byte
	for i := 0; i < len(a); i++ {
		diff |= a[i] ^ b[i]
	}
	return diff == 0
}

// macPool reuses keyed HMAC states and the buffers of one verification, so
// a check allocates nothing.
type macPool struct{ pool sync.Pool }

type macState struct {
	mac hash.Hash
	sum [sha256.Size]byte
	enc [44]byte // base64url of 32 bytes is 43 characters
}

func newVerifier(cfg SignedURLs) (*verifier, error) {
	if len(cfg.Keys) > 2 {
		return nil, fmt.Errorf("signed_urls: %d keys: at most two (the current one and the one it replaces)", len(cfg.Keys))
	}
	v := &verifier{}
	for i, k := range cfg.Keys {
		if len(k) < minKeyLen {
			return nil, fmt.Errorf("signed_urls: keys[%d]: %d bytes, want at least %d", i, len(k), minKeyLen)
		}
		key := append([]byte(nil), k...)
		v.keys = append(v.keys, &macPool{pool: sync.Pool{New: func() any {
			return &macState{mac: hmac.New(sha256.New, key)}
		}}})
	}
	v.msgs.New = func() any { b := make([]byte, 0, 256); return &b }
	for i, p := range cfg.Paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("signed_urls: paths[%d]: %q must start with /", i, p)
		}
		v.paths = append(v.paths, p)
	}
	return v, nil
}

// protects reports whether path needs a token.
func (v *verifier) protects(path string) bool {
	if len(v.paths) == 0 {
		return true
	}
	for _, p := range v.paths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// tokenFields are a request's token parameters, raw from its query.
type tokenFields struct {
	exp, prefix, ip, sig string
	hasPrefix, hasIP     bool
}

// verify checks the token of a request for path (as in the URL) with
// query rawQuery, from client; it returns "" when the token is good, else
// the reason it is not.
func (v *verifier) verify(path, rawQuery string, now time.Time, client func() netip.Addr) string {
	tf, ok := readToken(rawQuery)
	if !ok {
		return reasonInvalid
	}
	if tf.exp == "" || tf.sig == "" {
		return reasonMissing
	}
	exp, err := strconv.ParseInt(tf.exp, 10, 64)
	if err != nil || exp < 0 {
		return reasonInvalid
	}
	if now.Unix() > exp {
		return reasonExpired
	}
	if hasDotSegment(path) {
		// The cache and the origin resolve these; the token covers the
		// path as written.
		return reasonScope
	}
	scopeKind, scope := "path:", path
	if tf.hasPrefix {
		var ok bool
		if tf.prefix, ok = unescape(tf.prefix); !ok || !strings.HasPrefix(tf.prefix, "/") {
			return reasonInvalid
		}
		if !strings.HasPrefix(path, tf.prefix) {
			return reasonScope
		}
		scopeKind, scope = "prefix:", tf.prefix
	}
	if tf.hasIP {
		var ok bool
		if tf.ip, ok = unescape(tf.ip); !ok {
			return reasonInvalid
		}
		bound, ok := parseBinding(tf.ip)
		if !ok {
			return reasonInvalid
		}
		if c := client(); !c.IsValid() || !bound.Contains(c) {
			return reasonIP
		}
	}
	if len(tf.sig) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return reasonInvalid
	}
	bp := v.msgs.Get().(*[]byte)
	defer v.msgs.Put(bp)
	msg := append((*bp)[:0], tf.exp...)
	msg = append(msg, '\n')
	msg = append(msg, scopeKind...)
	msg = append(msg, scope...)
	msg = append(msg, '\n')
	msg = append(msg, tf.ip...)
	*bp = msg
	if v.seen.has(msg, tf.sig) {
		return ""
	}
	for _, kp := range v.keys {
		if kp.check(msg, tf.sig) {
			v.seen.add(msg, tf.sig)
			return ""
		}
	}
	return reasonInvalid
}

// check reports whether sig is the signature of msg under this key.
func (kp *macPool) check(msg []byte, sig string) bool {
	st := kp.pool.Get().(*macState)
	defer kp.pool.Put(st)
	st.mac.Reset()
	st.mac.Write(msg)
	sum := st.mac.Sum(st.sum[:0])
	enc := st.enc[:base64.RawURLEncoding.EncodedLen(len(sum))]
	base64.RawURLEncoding.Encode(enc, sum)
	// Constant time in the signature's bytes (crypto/subtle's rule),
	// without converting sig to a []byte.
	var diff byte
	for i := range enc {
		diff |= enc[i] ^ sig[i]
	}
	return diff == 0
}

// readToken picks the token parameters out of a raw query without
// allocating. A token parameter given twice makes the token invalid: the
// cache key drops every copy, so which one was checked must not be a
// question.
func readToken(q string) (tokenFields, bool) {
	var tf tokenFields
	var seen [4]bool
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		name, value, _ := strings.Cut(pair, "=")
		var i int
		switch name {
		case ParamExpires:
			i, tf.exp = 0, value
		case ParamPrefix:
			i, tf.prefix, tf.hasPrefix = 1, value, true
		case ParamIP:
			i, tf.ip, tf.hasIP = 2, value, true
		case ParamSignature:
			i, tf.sig = 3, value
		default:
			if strings.IndexByte(name, '%') >= 0 {
				// An encoded name the cache key would read as a token
				// parameter ("si%67"): refuse rather than guess.
				if n, err := url.QueryUnescape(name); err == nil && isTokenParam(n) {
					return tf, false
				}
			}
			continue
		}
		if seen[i] {
			return tf, false
		}
		seen[i] = true
	}
	return tf, true
}

func isTokenParam(name string) bool {
	return name == ParamExpires || name == ParamPrefix || name == ParamIP || name == ParamSignature
}

// unescape decodes a query value, allocating only when it is encoded.
func unescape(v string) (string, bool) {
	if strings.IndexByte(v, '%') < 0 && strings.IndexByte(v, '+') < 0 {
		return v, true
	}
	s, err := url.QueryUnescape(v)
	return s, err == nil
}

// parseBinding reads a token's ip value: an address or a CIDR.
func parseBinding(s string) (netip.Prefix, bool) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// hasDotSegment reports whether a path, read the way a server that decodes
// it may read it, has a "." or ".." segment: a token must cover the path
// that is fetched, and those segments change it.
func hasDotSegment(path string) bool {
	if strings.IndexByte(path, '.') < 0 && !strings.Contains(path, "%2") && !strings.Contains(path, "%5") {
		return false // no dot, no encoded dot, slash or backslash: the common case
	}
	if strings.IndexByte(path, '%') >= 0 {
		if p, err := url.PathUnescape(path); err == nil {
			path = p
		} else {
			return true
		}
	}
	for path != "" {
		var seg string
		if i := strings.IndexAny(path, `/\`); i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			seg, path = path, ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
