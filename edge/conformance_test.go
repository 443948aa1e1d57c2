package edge_test

// A conformance suite organised by RFC section. Every row names the section
// it checks, scripts a real origin (one response per origin request), sends
// a sequence of client requests through the edge on a fake clock, and
// asserts what a user sees: status, key fields, body bytes, Cache-Status
// and how many requests reached the origin, plus the conditional fields the
// origin received.
//
// Header values in scripts and expectations may be clock templates:
// "{t0}" is the time the row starts (whole seconds), "{now}" the fake
// clock's current time, each optionally followed by a signed Go duration
// ("{t0-10h}", "{now+2m}"); they are written as HTTP dates.

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cfOrigin is one scripted origin response.
type cfOrigin struct {
	status int      // 200 when 0
	hdr    []string // name, value pairs; a name given replaces the origin's default (Date)
	body   string
	// hangUp closes the connection without answering (origin unreachable).
	// The edge's Transport retries an idempotent request once when a reused
	// connection dies this way, so a hang-up costs two origin requests.
	hangUp bool
}

// cfStep is one client request and what it must produce.
type cfStep struct {
	advance time.Duration // moved on the fake clock before the request
	method  string        // GET when empty
	path    string        // "/r" when empty
	req     []string      // request fields, name/value pairs ("Host" sets the host)

	status int    // 200 when 0
	body   string // exact body, unless check is set
	check  func(t *testing.T, resp *http.Response, body string)
	cs     string   // exact Cache-Status; unchecked when empty
	csHas  string   // a part Cache-Status must contain
	hdr    []string // response fields, name/value pairs; "" asserts absence
	hits   int64    // requests the origin has received after this step
	// upstream are fields of the last request the origin received,
	// name/value pairs ("" asserts absence); ":method" is its method.
	upstream []string
}

// cfRow is one conformance case.
type cfRow struct {
	sec    string // the section checked, e.g. "RFC 9111 §4.2.1"
	name   string
	cfg    func(*edge.Config)
	origin []cfOrigin // the last response repeats if more requests arrive
	steps  []cfStep
	// skip names a known bug (reported) that keeps the row from passing.
	skip string
}

// Cache-Status forms used throughout (RFC 9211).
const (
	csMiss      = "test-edge; fwd=miss; fwd-status=200; stored"
	csStale200  = "test-edge; fwd=stale; fwd-status=200; stored"
	csRequest   = "test-edge; fwd=request; fwd-status=200; stored"
	csMethod200 = "test-edge; fwd=method; fwd-status=200"
)

// compressionOff turns compression on the fly off for a row.
func compressionOff(c *edge.Config) { c.Compression.Off = true }

// csUncache and csBypass are a 200 not stored for reason (the detail),
// fetched with others waiting and fetched alone (hit-for-miss).
func csUncache(reason string) string {
	return `test-edge; fwd=miss; fwd-status=200; detail="` + reason + `"`
}

func csBypass(reason string) string {
	return `test-edge; fwd=bypass; fwd-status=200; detail="` + reason + `"`
}

func csHit(ttl int) string { return fmt.Sprintf("test-edge; hit; ttl=%d", ttl) }

func cs304(fwd string, ttl int) string {
	return fmt.Sprintf("test-edge; fwd=%s; fwd-status=304; ttl=%d; stored", fwd, ttl)
}

// Common responses.
var (
	cfLong = strings.Repeat(body26, 40) // 1040 bytes

	cf60   = cfOrigin{hdr: []string{"Cache-Control", "max-age=60"}, body: "A"}
	cf60B  = cfOrigin{hdr: []string{"Cache-Control", "max-age=60"}, body: "B"}
	cf10   = cfOrigin{hdr: []string{"Cache-Control", "max-age=10"}, body: "A"}
	cf10B  = cfOrigin{hdr: []string{"Cache-Control", "max-age=10"}, body: "B"}
	cfPost = cfOrigin{body: "ok"}
	// cfDoc is a validatable document for conditional and Range rows.
	cfDoc = cfOrigin{hdr: []string{"Cache-Control", "max-age=600", "ETag", `"v1"`,
		"Last-Modified", "{t0-1h}", "Content-Type", "text/plain"}, body: body26}
)

// twice is a row fetching /r twice: stored means the second is a hit.
func twice(sec, name string, o cfOrigin, req []string, stored bool) cfRow {
	status := o.status
	if status == 0 {
		status = 200
	}
	second := cfStep{req: req, status: status, body: o.body, csHas: "; hit", hits: 1}
	if !stored {
		second.csHas, second.hits = "fwd=", 2
	}
	return cfRow{sec: sec, name: name, origin: []cfOrigin{o}, steps: []cfStep{
		{req: req, status: status, body: o.body, csHas: "fwd=miss", hits: 1},
		second,
	}}
}

// docThen is a row that stores cfDoc and then sends one request.
func docThen(sec, name string, s cfStep) cfRow {
	s.hits = 1
	return cfRow{sec: sec, name: name, origin: []cfOrigin{cfDoc}, steps: []cfStep{
		{body: body26, cs: csMiss, hits: 1}, s,
	}}
}

func conformanceRows() []cfRow {
	var rows []cfRow
	add := func(r ...cfRow) { rows = append(rows, r...) }

	// RFC 9111 §3: storing responses in a shared cache.
	add(
		cfRow{sec: "RFC 9111 §3", name: "explicit freshness is stored and reused", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"Age", ""}, hits: 1},
			{body: "A", cs: csHit(60), hdr: []string{"Age", "0", "Cache-Control", "max-age=60"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §3", name: "no default TTL: no freshness and no validator is not stored", origin: []cfOrigin{{body: "A"}}, steps: []cfStep{
			{body: "A", cs: csUncache("no-freshness"), hits: 1},
			{body: "A", cs: csBypass("no-freshness"), hits: 2},
		}},
		twice("RFC 9111 §3", "203 with Last-Modified is cacheable by default", cfOrigin{status: 203, hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "204 with Last-Modified is cacheable by default", cfOrigin{status: 204, hdr: []string{"Last-Modified", "{t0-10h}"}}, nil, true),
		twice("RFC 9111 §3", "301 with Last-Modified is cacheable by default", cfOrigin{status: 301, hdr: []string{"Location", "/x", "Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "308 with Last-Modified is cacheable by default", cfOrigin{status: 308, hdr: []string{"Location", "/x", "Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "404 with Last-Modified is cacheable by default", cfOrigin{status: 404, hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "410 with Last-Modified is cacheable by default", cfOrigin{status: 410, hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "501 with Last-Modified is cacheable by default", cfOrigin{status: 501, hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "302 with only Last-Modified is not stored", cfOrigin{status: 302, hdr: []string{"Location", "/x", "Last-Modified", "{t0-10h}"}, body: "A"}, nil, false),
		twice("RFC 9111 §3", "307 with only Last-Modified is not stored", cfOrigin{status: 307, hdr: []string{"Location", "/x", "Last-Modified", "{t0-10h}"}, body: "A"}, nil, false),
		twice("RFC 9111 §3", "403 with only Last-Modified is not stored", cfOrigin{status: 403, hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}, nil, false),
		twice("RFC 9111 §3", "302 with max-age is stored", cfOrigin{status: 302, hdr: []string{"Location", "/x", "Cache-Control", "max-age=60"}, body: "A"}, nil, true),
		twice("RFC 9111 §3", "500 with max-age is stored", cfOrigin{status: 500, hdr: []string{"Cache-Control", "max-age=60"}, body: "A"}, nil, true),
		cfRow{sec: "RFC 9111 §3", name: "500 without freshness is passed, not stored", origin: []cfOrigin{{status: 500, body: "E"}}, steps: []cfStep{
			{status: 500, body: "E", cs: `test-edge; fwd=miss; fwd-status=500; detail="status"`, hits: 1},
			{status: 500, body: "E", cs: `test-edge; fwd=miss; fwd-status=500; detail="status"`, hits: 2},
		}},
		twice("RFC 9111 §3", "unknown final status with max-age is stored", cfOrigin{status: 299, hdr: []string{"Cache-Control", "max-age=60"}, body: "A"}, nil, true),
		cfRow{sec: "RFC 9111 §3", name: "NegativeTTL gives a 404 without freshness a floor (policy)", cfg: func(c *edge.Config) { c.NegativeTTL = 30 * time.Second },
			origin: []cfOrigin{{status: 404, body: "no"}}, steps: []cfStep{
				{status: 404, body: "no", cs: "test-edge; fwd=miss; fwd-status=404; stored", hits: 1},
				{status: 404, body: "no", cs: csHit(30), hits: 1},
			}},
		cfRow{sec: "RFC 9111 §3", name: "a 404 without freshness is not stored by default (policy)", origin: []cfOrigin{{status: 404, body: "no"}}, steps: []cfStep{
			{status: 404, body: "no", hits: 1},
			{status: 404, body: "no", csHas: "fwd=", hits: 2},
		}},
		// Outpost policy (DESIGN "Privacy and request hygiene"): a
		// Set-Cookie reaches only the client whose request fetched it.
		cfRow{sec: "RFC 9111 §3", name: "Set-Cookie keeps a response out of the cache by default (policy)", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Set-Cookie", "s=1"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csUncache("set-cookie"), hdr: []string{"Set-Cookie", "s=1"}, hits: 1},
			{body: "A", cs: csBypass("set-cookie"), hdr: []string{"Set-Cookie", "s=1"}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §3", name: "SetCookieStrip stores the response without its cookie (policy)", cfg: func(c *edge.Config) { c.Hosts[0].Privacy.SetCookie = edge.SetCookieStrip },
			origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Set-Cookie", "s=1"}, body: "A"}}, steps: []cfStep{
				{body: "A", cs: csMiss, hdr: []string{"Set-Cookie", "s=1"}, hits: 1},
				{body: "A", cs: csHit(60), hdr: []string{"Set-Cookie", ""}, hits: 1},
			}},
	)

	// RFC 9111 §3.5: requests with Authorization.
	auth := []string{"Authorization", "Bearer x"}
	add(
		cfRow{sec: "RFC 9111 §3.5", name: "Authorization without permission is not stored", origin: []cfOrigin{cf60}, steps: []cfStep{
			{req: auth, body: "A", cs: csUncache("authorization"), hits: 1},
			{req: auth, body: "A", cs: csBypass("authorization"), hits: 2},
		}},
		twice("RFC 9111 §3.5", "Authorization with public is stored", cfOrigin{hdr: []string{"Cache-Control", "public, max-age=60"}, body: "A"}, auth, true),
		twice("RFC 9111 §3.5", "Authorization with s-maxage is stored", cfOrigin{hdr: []string{"Cache-Control", "s-maxage=60"}, body: "A"}, auth, true),
		twice("RFC 9111 §3.5", "Authorization with must-revalidate is stored", cfOrigin{hdr: []string{"Cache-Control", "max-age=60, must-revalidate"}, body: "A"}, auth, true),
	)

	// RFC 9111 §4.1: Vary.
	vary := func(field string, body string) cfOrigin {
		return cfOrigin{hdr: []string{"Cache-Control", "max-age=60", "Vary", field}, body: body}
	}
	add(
		cfRow{sec: "RFC 9111 §4.1", name: "same selecting value is a hit", origin: []cfOrigin{vary("Accept-Encoding", "gz")}, steps: []cfStep{
			{req: []string{"Accept-Encoding", "gzip"}, body: "gz", cs: csMiss, hits: 1},
			{req: []string{"Accept-Encoding", "gzip"}, body: "gz", cs: csHit(60), hdr: []string{"Vary", "Accept-Encoding"}, hits: 1},
		}},
		// With compression off, Outpost keys Accept-Encoding by the one
		// coding a client would be given, and asks upstream for that.
		cfRow{sec: "RFC 9111 §4.1", name: "another selecting value is a vary-miss, both kept (compression off)", cfg: compressionOff, origin: []cfOrigin{vary("Accept-Encoding", "gz"), vary("Accept-Encoding", "br")}, steps: []cfStep{
			{req: []string{"Accept-Encoding", "gzip"}, body: "gz", cs: csMiss, hits: 1},
			{req: []string{"Accept-Encoding", "br"}, body: "br", cs: "test-edge; fwd=vary-miss; fwd-status=200; stored", hits: 2},
			{req: []string{"Accept-Encoding", "gzip"}, body: "gz", cs: csHit(60), hits: 2},
			{req: []string{"Accept-Encoding", "br"}, body: "br", cs: csHit(60), hits: 2},
			{req: []string{"Accept-Encoding", "gzip;q=0.5, br"}, body: "br", cs: csHit(60), hits: 2},
		}},
		// With compression on, fills ask upstream for identity, so the
		// origin's Vary: Accept-Encoding cannot select among its responses
		// and one stored response serves every coding (compress.go).
		cfRow{sec: "RFC 9111 §4.1", name: "Accept-Encoding is Outpost's to negotiate (compression on)", origin: []cfOrigin{vary("Accept-Encoding", "id")}, steps: []cfStep{
			{req: []string{"Accept-Encoding", "gzip"}, body: "id", cs: csMiss, hits: 1},
			{req: []string{"Accept-Encoding", "br"}, body: "id", cs: csHit(60), hdr: []string{"Vary", "Accept-Encoding"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "an absent field does not match a present one", origin: []cfOrigin{vary("Accept-Language", "none"), vary("Accept-Language", "en")}, steps: []cfStep{
			{body: "none", cs: csMiss, hits: 1},
			{req: []string{"Accept-Language", "en"}, body: "en", cs: "test-edge; fwd=vary-miss; fwd-status=200; stored", hits: 2},
			{body: "none", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "Accept-Encoding codings are normalised (policy)", origin: []cfOrigin{vary("Accept-Encoding", "x")}, steps: []cfStep{
			{req: []string{"Accept-Encoding", "gzip, br"}, body: "x", cs: csMiss, hits: 1},
			{req: []string{"Accept-Encoding", "br,gzip"}, body: "x", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "Accept-Language compares case-insensitively (policy)", origin: []cfOrigin{vary("Accept-Language", "x")}, steps: []cfStep{
			{req: []string{"Accept-Language", "EN-us"}, body: "x", cs: csMiss, hits: 1},
			{req: []string{"Accept-Language", "en-US"}, body: "x", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "list whitespace is normalised", origin: []cfOrigin{vary("X-Tenant", "x")}, steps: []cfStep{
			{req: []string{"X-Tenant", "a,  b"}, body: "x", cs: csMiss, hits: 1},
			{req: []string{"X-Tenant", "a,b"}, body: "x", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "other fields compare case-sensitively", origin: []cfOrigin{vary("X-Tenant", "a"), vary("X-Tenant", "A")}, steps: []cfStep{
			{req: []string{"X-Tenant", "a"}, body: "a", cs: csMiss, hits: 1},
			{req: []string{"X-Tenant", "A"}, body: "A", cs: "test-edge; fwd=vary-miss; fwd-status=200; stored", hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "every nominated field must match", origin: []cfOrigin{vary("Accept-Language, x-tenant", "en-a"), vary("Accept-Language, x-tenant", "en-b")}, steps: []cfStep{
			{req: []string{"Accept-Language", "en", "X-Tenant", "a"}, body: "en-a", cs: csMiss, hits: 1},
			{req: []string{"Accept-Language", "en", "X-Tenant", "b"}, body: "en-b", cs: "test-edge; fwd=vary-miss; fwd-status=200; stored", hits: 2},
			{req: []string{"Accept-Language", "en", "X-Tenant", "a"}, body: "en-a", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.1", name: "Vary: * is never stored", origin: []cfOrigin{vary("*", "x")}, steps: []cfStep{
			{body: "x", cs: csUncache("vary-star"), hits: 1},
			{body: "x", cs: csBypass("vary-star"), hits: 2},
		}},
	)

	// RFC 9111 §4.2.1: calculating freshness lifetime; §5.3 Expires.
	add(
		cfRow{sec: "RFC 9111 §4.2.1", name: "s-maxage over max-age", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60, s-maxage=30"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(30), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "max-age over Expires", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Expires", "{t0+1h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "Expires minus Date", origin: []cfOrigin{{hdr: []string{"Expires", "{t0+120s}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, body: "A", cs: csHit(100), hdr: []string{"Age", "20"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "Expires is measured from Date, not the cache's clock", origin: []cfOrigin{{hdr: []string{"Date", "{t0-1h}", "Expires", "{t0+1h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(3600), hdr: []string{"Age", "3600"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "the first of repeated max-age wins", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60, max-age=10"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "directives on two field lines combine", origin: []cfOrigin{{hdr: []string{"Cache-Control", "public", "Cache-Control", "max-age=60"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "directive names are case-insensitive", origin: []cfOrigin{{hdr: []string{"Cache-Control", "MAX-AGE=60"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.1", name: "an invalid max-age makes the response stale", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=soon", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 0), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.3", name: "an invalid Expires means already expired", origin: []cfOrigin{
			{hdr: []string{"Expires", "0", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 0), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.3", name: "Expires in the past without a validator is not stored", origin: []cfOrigin{{hdr: []string{"Expires", "{t0-1h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csUncache("no-freshness"), hits: 1},
			{body: "A", cs: csBypass("no-freshness"), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.3", name: "max-age makes an invalid Expires irrelevant", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Expires", "0"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.3", name: "two Expires lines are treated as stale", origin: []cfOrigin{{hdr: []string{"Expires", "{t0+1h}", "Expires", "{t0+2h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csUncache("no-freshness"), hits: 1},
			{body: "A", cs: csBypass("no-freshness"), hits: 2},
		}},
	)

	// RFC 9111 §4.2.2: heuristic freshness.
	add(
		cfRow{sec: "RFC 9111 §4.2.2", name: "10% of Date minus Last-Modified", origin: []cfOrigin{{hdr: []string{"Last-Modified", "{t0-10h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(3600), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "capped at 24h (policy)", origin: []cfOrigin{{hdr: []string{"Last-Modified", "{t0-24000h}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(86400), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "HeuristicFraction is configurable", cfg: func(c *edge.Config) { c.HeuristicFraction = 0.5 },
			origin: []cfOrigin{{hdr: []string{"Last-Modified", "{t0-2h}"}, body: "A"}}, steps: []cfStep{
				{body: "A", cs: csMiss, hits: 1},
				{body: "A", cs: csHit(3600), hits: 1},
			}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "public allows a heuristic for a 302", origin: []cfOrigin{{status: 302, hdr: []string{"Location", "/x", "Cache-Control", "public", "Last-Modified", "{t0-10h}"}, body: "A"}}, steps: []cfStep{
			{status: 302, body: "A", cs: "test-edge; fwd=miss; fwd-status=302; stored", hits: 1},
			{status: 302, body: "A", cs: csHit(3600), hdr: []string{"Location", "/x"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "public without freshness or Last-Modified is not stored (no default TTL)", origin: []cfOrigin{{hdr: []string{"Cache-Control", "public"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csUncache("no-freshness"), hits: 1},
			{body: "A", cs: csBypass("no-freshness"), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "heuristic lifetime runs out and is revalidated with If-Modified-Since", origin: []cfOrigin{
			{hdr: []string{"Last-Modified", "{t0-100s}"}, body: "A"},
			{status: 304},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "A", cs: cs304("stale", 11), upstream: []string{"If-Modified-Since", "{t0-100s}", "If-None-Match", ""}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.2.2", name: "Last-Modified not before Date gives no heuristic freshness", origin: []cfOrigin{
			{hdr: []string{"Last-Modified", "{t0+1h}"}, body: "A"},
			{status: 304},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 0), upstream: []string{"If-Modified-Since", "{t0+1h}"}, hits: 2},
		}},
	)

	// RFC 9111 §4.2.3: calculating age.
	add(
		cfRow{sec: "RFC 9111 §4.2.3", name: "a received Age is folded into the current age", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=100", "Age", "30"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"Age", "30"}, hits: 1},
			{advance: 20 * time.Second, body: "A", cs: csHit(50), hdr: []string{"Age", "50"}, hits: 1},
			{advance: 51 * time.Second, body: "A", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.2.3", name: "apparent age from Date", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Date", "{t0-30s}"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(30), hdr: []string{"Age", "30"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.3", name: "an Age past max-age is stale on arrival", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Age", "120"}, body: "A"}, {hdr: []string{"Cache-Control", "max-age=60"}, body: "B"}}, steps: []cfStep{
			{body: "A", hits: 1},
			{body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.2.3", name: "an invalid Age is ignored", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Age", "soon"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(60), hdr: []string{"Age", "0"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.2.3", name: "resident time adds to Age", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 25 * time.Second, body: "A", cs: csHit(35), hdr: []string{"Age", "25"}, hits: 1},
		}},
	)

	// RFC 9111 §4.2.4: serving stale responses.
	add(
		cfRow{sec: "RFC 9111 §4.2.4", name: "a stale response is not served without permission", origin: []cfOrigin{cf10, cf10B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "B", cs: csStale200, hits: 2},
			{body: "B", cs: csHit(10), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.2.4", name: "disconnected: served stale when the origin gives no response (policy)", origin: []cfOrigin{cf10, {hangUp: true}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", cs: `test-edge; fwd=stale; ttl=-5; detail="origin-unreachable"`, hdr: []string{"Age", "15"}, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.2.4", name: "disconnected: not past StaleIfUnreachable", cfg: func(c *edge.Config) { c.StaleIfUnreachable = 10 * time.Second }, origin: []cfOrigin{cf10, {hangUp: true}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 25 * time.Second, status: 502, body: "502 Bad Gateway\n", cs: "test-edge; fwd=stale", hits: 3},
		}},
	)

	// RFC 9111 §4.3: validation.
	add(
		cfRow{sec: "RFC 9111 §4.3.1", name: "a validator alone makes a response storable, revalidated on every use", origin: []cfOrigin{
			{hdr: []string{"ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 0), upstream: []string{"If-None-Match", `"e1"`, "If-Modified-Since", ""}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.1", name: "Last-Modified is sent as If-Modified-Since", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "Last-Modified", "{t0-1h}"}, body: "A"},
			{status: 304},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "A", cs: cs304("stale", 10), upstream: []string{"If-Modified-Since", "{t0-1h}", "If-None-Match", ""}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.3", name: "a 304 freshens and updates the stored fields", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`, "X-V", "1"}, body: "A"},
			{status: 304, hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`, "X-V", "2"}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"X-V", "1"}, hits: 1},
			{advance: 11 * time.Second, body: "A", cs: cs304("stale", 10), hdr: []string{"X-V", "2", "ETag", `"e1"`}, upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{advance: 5 * time.Second, body: "A", cs: csHit(5), hdr: []string{"X-V", "2", "Age", "5"}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.4", name: "a 304's Cache-Control replaces the stored one", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"Cache-Control", "max-age=100", "ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "A", cs: cs304("stale", 100), hits: 2},
			{advance: 50 * time.Second, body: "A", cs: csHit(50), hdr: []string{"Cache-Control", "max-age=100"}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.3", name: "a 200 replaces the stored response", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}, body: "A"},
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e2"`}, body: "B"},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "B", cs: csStale200, hdr: []string{"ETag", `"e2"`}, upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{body: "B", cs: csHit(10), hdr: []string{"ETag", `"e2"`}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.4", name: "a 304 for another strong ETag is not used: fetched whole", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e2"`}},
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e2"`}, body: "B"},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "B", cs: csStale200, hdr: []string{"ETag", `"e2"`}, upstream: []string{"If-None-Match", ""}, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.3.4", name: "a 304 with a weak ETag matching no stored response is not used", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `W/"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `W/"e2"`}},
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `W/"e2"`}, body: "B"},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "B", cs: csStale200, hdr: []string{"ETag", `W/"e2"`}, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.3.4", name: "a 304 keeps the stored fields it does not carry", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`, "Content-Type", "text/plain", "X-Keep", "k"}, body: "A"},
			{status: 304, hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, body: "A", cs: cs304("stale", 10), hdr: []string{"Content-Type", "text/plain", "X-Keep", "k", "Content-Length", "1"}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.2", name: "a client's conditional on a stale response is validated with the cache's own validator", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"Cache-Control", "max-age=10", "ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, req: []string{"If-None-Match", `"e0"`}, body: "A", cs: cs304("stale", 10), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{advance: time.Second, req: []string{"If-None-Match", `"e1"`}, status: 304, cs: csHit(9), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.3.2", name: "If-Modified-Since without a stored Last-Modified compares with Date", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 5 * time.Second, req: []string{"If-Modified-Since", "{t0}"}, status: 304, cs: csHit(55), hits: 1},
			{req: []string{"If-Modified-Since", "{t0-1s}"}, body: "A", cs: csHit(55), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §4.3.3", name: "a 5xx to a revalidation is passed on (policy: no stale-if-error)", origin: []cfOrigin{cf10, {status: 500, body: "E"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 11 * time.Second, status: 500, body: "E", cs: `test-edge; fwd=stale; fwd-status=500; detail="status"`, hits: 2},
		}},
	)

	// RFC 9111 §4.4: invalidating stored responses.
	add(
		cfRow{sec: "RFC 9111 §4.4", name: "POST invalidates the target URI", origin: []cfOrigin{cf60, cfPost, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "POST", body: "ok", cs: csMethod200, hits: 2},
			{body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "DELETE invalidates the target URI", origin: []cfOrigin{cf60, cfPost, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "DELETE", body: "ok", cs: csMethod200, upstream: []string{":method", "DELETE"}, hits: 2},
			{body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "an error response does not invalidate", origin: []cfOrigin{cf60, {status: 500, body: "no"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "POST", status: 500, body: "no", cs: "test-edge; fwd=method; fwd-status=500", hits: 2},
			{body: "A", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "a method of unknown safety invalidates", origin: []cfOrigin{cf60, cfPost, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "BREW", body: "ok", cs: csMethod200, upstream: []string{":method", "BREW"}, hits: 2},
			{body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "a redirect (non-error) response invalidates", origin: []cfOrigin{cf60, {status: 303, hdr: []string{"Location", "/done"}}, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "POST", status: 303, cs: "test-edge; fwd=method; fwd-status=303", hits: 2},
			{body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "a safe method does not invalidate", origin: []cfOrigin{cf60, cfPost}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{method: "OPTIONS", body: "ok", cs: csMethod200, hits: 2},
			{body: "A", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "a relative Location is the same origin and is invalidated", origin: []cfOrigin{cf60, {status: 201, hdr: []string{"Location", "/a"}}, cf60B}, steps: []cfStep{
			{path: "/a", body: "A", cs: csMiss, hits: 1},
			{method: "PUT", path: "/p", status: 201, cs: "test-edge; fwd=method; fwd-status=201", hits: 2},
			{path: "/a", body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "a same-origin absolute Content-Location is invalidated", origin: []cfOrigin{cf60, {hdr: []string{"Content-Location", "http://example.com/a"}, body: "ok"}, cf60B}, steps: []cfStep{
			{path: "/a", req: []string{"Host", "example.com"}, body: "A", cs: csMiss, hits: 1},
			{method: "POST", path: "/p", req: []string{"Host", "example.com"}, body: "ok", cs: csMethod200, hits: 2},
			{path: "/a", req: []string{"Host", "example.com"}, body: "B", cs: csMiss, hits: 3},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "another origin's Location is left alone", origin: []cfOrigin{cf60, {status: 201, hdr: []string{"Location", "http://elsewhere.example/b"}}}, steps: []cfStep{
			{path: "/b", req: []string{"Host", "elsewhere.example"}, body: "A", cs: csMiss, hits: 1},
			{method: "POST", path: "/p", status: 201, cs: "test-edge; fwd=method; fwd-status=201", hits: 2},
			{path: "/b", req: []string{"Host", "elsewhere.example"}, body: "A", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §4.4", name: "invalidation removes every variant", origin: []cfOrigin{vary("X-Tenant", "a"), vary("X-Tenant", "b"), cfPost, vary("X-Tenant", "b2")}, steps: []cfStep{
			{req: []string{"X-Tenant", "a"}, body: "a", cs: csMiss, hits: 1},
			{req: []string{"X-Tenant", "b"}, body: "b", cs: "test-edge; fwd=vary-miss; fwd-status=200; stored", hits: 2},
			{method: "POST", body: "ok", cs: csMethod200, hits: 3},
			{req: []string{"X-Tenant", "b"}, body: "b2", cs: csMiss, hits: 4},
		}},
	)

	// RFC 9111 §5.2.1: request directives.
	cc := func(v string) []string { return []string{"Cache-Control", v} }
	etag60 := cfOrigin{hdr: []string{"Cache-Control", "max-age=60", "ETag", `"e1"`}, body: "A"}
	nm60 := cfOrigin{status: 304, hdr: []string{"Cache-Control", "max-age=60", "ETag", `"e1"`}}
	add(
		cfRow{sec: "RFC 9111 §5.2.1.1", name: "max-age: an older response is not used", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 10 * time.Second, req: cc("max-age=5"), body: "B", cs: csRequest, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.1", name: "max-age: a young enough response is a hit", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 10 * time.Second, req: cc("max-age=30"), body: "A", cs: csHit(50), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.1", name: "max-age=0 revalidates", origin: []cfOrigin{etag60, nm60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: time.Second, req: cc("max-age=0"), body: "A", cs: cs304("request", 60), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.2", name: "max-stale accepts a response stale within its bound", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 80 * time.Second, req: cc("max-stale=100"), body: "A", cs: csHit(-20), hdr: []string{"Age", "80"}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.2", name: "max-stale without a value accepts any staleness", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 10000 * time.Second, req: cc("max-stale"), body: "A", cs: csHit(-9940), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.2", name: "max-stale too small: fetched", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 80 * time.Second, req: cc("max-stale=10"), body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.3", name: "min-fresh: not fresh enough is not used", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 40 * time.Second, req: cc("min-fresh=30"), body: "B", csHas: "fwd-status=200; stored", hits: 2},
			{body: "B", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9211 §2.2", name: "min-fresh refusing a fresh response is fwd=request", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 40 * time.Second, req: cc("min-fresh=30"), body: "B", cs: csRequest, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.3", name: "min-fresh satisfied is a hit", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 10 * time.Second, req: cc("min-fresh=30"), body: "A", cs: csHit(50), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.4", name: "no-cache revalidates a fresh response", origin: []cfOrigin{etag60, nm60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("no-cache"), body: "A", cs: cs304("request", 60), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{body: "A", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.4", name: "no-cache without a validator fetches whole", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("no-cache"), body: "B", cs: csRequest, upstream: []string{"If-None-Match", ""}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.4", name: "directive names are case-insensitive in requests", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("NO-CACHE"), body: "B", cs: csRequest, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.4", name: "IgnoreClientNoCache answers no-cache from the cache (policy)", cfg: func(c *edge.Config) { c.IgnoreClientNoCache = true }, origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("no-cache"), body: "A", cs: csHit(60), hits: 1},
			{req: cc("max-age=0"), body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.5", name: "no-store: the response is not stored", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{req: cc("no-store"), body: "A", cs: "test-edge; fwd=bypass; fwd-status=200", hits: 1},
			{body: "B", cs: csMiss, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.5", name: "no-store may be answered by a stored response", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("no-store"), body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.7", name: "only-if-cached with nothing stored is 504", steps: []cfStep{
			{req: cc("only-if-cached"), status: 504, body: "504 Gateway Timeout\n", cs: `test-edge; fwd=miss; detail="only-if-cached"`, hits: 0},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.7", name: "only-if-cached with a fresh stored response is a hit", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("only-if-cached"), body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.7", name: "only-if-cached with a stale stored response is 504", origin: []cfOrigin{cf10}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, req: cc("only-if-cached"), status: 504, body: "504 Gateway Timeout\n", cs: `test-edge; fwd=stale; detail="only-if-cached"`, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.1.7", name: "only-if-cached with max-stale takes a stale response", origin: []cfOrigin{cf10}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, req: cc("only-if-cached, max-stale"), body: "A", cs: csHit(-10), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.3", name: "an unknown request directive is ignored", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: cc("x-unknown, x-other=1"), body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.4", name: "a lone request Pragma: no-cache acts as Cache-Control: no-cache (HTTP/1.0 compatibility)", origin: []cfOrigin{etag60, nm60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: []string{"Pragma", "no-cache"}, body: "A", cs: cs304("request", 60), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.4", name: "Pragma is ignored when Cache-Control is present", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: []string{"Pragma", "no-cache", "Cache-Control", "x-unknown"}, body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.4", name: "other pragmas are ignored", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{req: []string{"Pragma", "x-foo"}, body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.4", name: "a response Pragma: no-cache without Cache-Control is taken as no-cache (policy)", origin: []cfOrigin{
			{hdr: []string{"Expires", "{t0+1h}", "Pragma", "no-cache", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"Expires", "{t0+1h}", "ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 3600), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
		}},
	)

	// RFC 9111 §5.2.2: response directives.
	respCC := func(v, body string) cfOrigin { return cfOrigin{hdr: []string{"Cache-Control", v}, body: body} }
	add(
		cfRow{sec: "RFC 9111 §5.2.2.2", name: "must-revalidate: not served stale even when disconnected", origin: []cfOrigin{respCC("max-age=10, must-revalidate", "A"), {hangUp: true}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, status: 502, body: "502 Bad Gateway\n", cs: "test-edge; fwd=stale", hits: 3},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.2", name: "must-revalidate overrides request max-stale", origin: []cfOrigin{respCC("max-age=10, must-revalidate", "A"), respCC("max-age=10, must-revalidate", "B")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, req: cc("max-stale"), body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.8", name: "proxy-revalidate binds a shared cache", origin: []cfOrigin{respCC("max-age=10, proxy-revalidate", "A"), respCC("max-age=10, proxy-revalidate", "B")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, req: cc("max-stale"), body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.10", name: "s-maxage implies proxy-revalidate", origin: []cfOrigin{respCC("s-maxage=10", "A"), respCC("s-maxage=10", "B")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 20 * time.Second, req: cc("max-stale"), body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.4", name: "no-cache: stored, validated before every reuse", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=60, no-cache", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: cs304("stale", 60), upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{body: "A", cs: cs304("stale", 60), hits: 3},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.4", name: `no-cache="field": the rest is reused without validation`, origin: []cfOrigin{{hdr: []string{"Cache-Control", `max-age=60, no-cache="X-Secret"`, "X-Secret", "s"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"X-Secret", "s"}, hits: 1},
			{body: "A", cs: csHit(60), hdr: []string{"X-Secret", ""}, hits: 1},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.5", name: "no-store is not stored", origin: []cfOrigin{respCC("max-age=60, no-store", "A")}, steps: []cfStep{
			{body: "A", cs: csUncache("no-store"), hits: 1},
			{body: "A", cs: csBypass("no-store"), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.7", name: "private is not stored", origin: []cfOrigin{respCC("private, max-age=60", "A")}, steps: []cfStep{
			{body: "A", cs: csUncache("private"), hits: 1},
			{body: "A", cs: csBypass("private"), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §5.2.2.7", name: `private="field": stored without the field`, origin: []cfOrigin{{hdr: []string{"Cache-Control", `private="X-User", max-age=60`, "X-User", "alice"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"X-User", "alice"}, hits: 1},
			{body: "A", cs: csHit(60), hdr: []string{"X-User", ""}, hits: 1},
		}},
		twice("RFC 9111 §5.2.2.3", "must-understand with a known status overrides no-store", respCC("max-age=60, no-store, must-understand", "A"), nil, true),
		twice("RFC 9111 §5.2.2.3", "must-understand with an unknown status is not stored", cfOrigin{status: 299, hdr: []string{"Cache-Control", "max-age=60, must-understand"}, body: "A"}, nil, false),
		cfRow{sec: "RFC 9111 §5.2.2.6", name: "no-transform: the stored bytes and their metadata are served unchanged", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60, no-transform", "Content-Type", "text/plain; charset=latin1"}, body: "  spaced\r\n text  "}}, steps: []cfStep{
			{body: "  spaced\r\n text  ", cs: csMiss, hits: 1},
			{body: "  spaced\r\n text  ", cs: csHit(60), hdr: []string{"Content-Type", "text/plain; charset=latin1", "Content-Length", "17", "Content-Encoding", ""}, hits: 1},
		}},
		twice("RFC 9111 §5.2.2.9", "public with max-age is stored", respCC("public, max-age=60", "A"), nil, true),
		twice("RFC 9111 §5.2.3", "an unknown response directive is ignored", respCC("max-age=60, x-ext=1, x-flag", "A"), nil, true),
	)

	// RFC 5861: stale-while-revalidate and stale-if-error.
	swr := respCC("max-age=10, stale-while-revalidate=60", "A")
	swrB := respCC("max-age=10, stale-while-revalidate=60", "B")
	sie := respCC("max-age=10, stale-if-error=60", "A")
	add(
		cfRow{sec: "RFC 5861 §3", name: "stale-while-revalidate serves stale and refreshes in the background", origin: []cfOrigin{swr, swrB}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", cs: `test-edge; hit; ttl=-5; detail="stale-while-revalidate"`, hdr: []string{"Age", "15"}, hits: 2},
			{body: "B", cs: csHit(10), hits: 2},
		}},
		cfRow{sec: "RFC 5861 §3", name: "the background refresh is conditional", origin: []cfOrigin{
			{hdr: []string{"Cache-Control", "max-age=10, stale-while-revalidate=60", "ETag", `"e1"`}, body: "A"},
			{status: 304, hdr: []string{"ETag", `"e1"`}},
		}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", csHas: `detail="stale-while-revalidate"`, upstream: []string{"If-None-Match", `"e1"`}, hits: 2},
			{body: "A", cs: csHit(10), hits: 2},
		}},
		cfRow{sec: "RFC 5861 §3", name: "past the window the fetch is synchronous", origin: []cfOrigin{swr, swrB}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 80 * time.Second, body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 5861 §3", name: "node-wide default window (Config.StaleWhileRevalidate)", cfg: func(c *edge.Config) { c.StaleWhileRevalidate = time.Minute }, origin: []cfOrigin{cf10, cf10B}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", csHas: `detail="stale-while-revalidate"`, hits: 2},
			{body: "B", cs: csHit(10), hits: 2},
		}},
		cfRow{sec: "RFC 5861 §3", name: "must-revalidate disables stale-while-revalidate", origin: []cfOrigin{respCC("max-age=10, stale-while-revalidate=60, must-revalidate", "A"), respCC("max-age=10", "B")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "B", cs: csStale200, hits: 2},
		}},
		cfRow{sec: "RFC 5861 §4", name: "stale-if-error serves stale on a 500", origin: []cfOrigin{sie, {status: 500, body: "E"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", cs: `test-edge; fwd=stale; fwd-status=500; ttl=-5; detail="stale-if-error"`, hits: 2},
		}},
		cfRow{sec: "RFC 5861 §4", name: "stale-if-error serves stale on a 503", origin: []cfOrigin{sie, {status: 503, body: "E"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, body: "A", cs: `test-edge; fwd=stale; fwd-status=503; ttl=-5; detail="stale-if-error"`, hits: 2},
		}},
		cfRow{sec: "RFC 5861 §4", name: "past the window the error is passed", origin: []cfOrigin{sie, {status: 500, body: "E"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 80 * time.Second, status: 500, body: "E", cs: `test-edge; fwd=stale; fwd-status=500; detail="status"`, hits: 2},
		}},
		cfRow{sec: "RFC 5861 §4", name: "stale-if-error does not apply to a 404", origin: []cfOrigin{sie, {status: 404, body: "gone"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, status: 404, body: "gone", csHas: "fwd=stale; fwd-status=404", hits: 2},
		}},
		cfRow{sec: "RFC 5861 §4", name: "s-maxage forbids stale-if-error", origin: []cfOrigin{respCC("s-maxage=10, stale-if-error=60", "A"), {status: 500, body: "E"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 15 * time.Second, status: 500, body: "E", cs: `test-edge; fwd=stale; fwd-status=500; detail="status"`, hits: 2},
		}},
	)

	// RFC 9213: CDN-Cache-Control; Surrogate-Control (Edge Architecture 1.0).
	cdn := func(cdnCC, cc, body string) cfOrigin {
		return cfOrigin{hdr: []string{"CDN-Cache-Control", cdnCC, "Cache-Control", cc}, body: body}
	}
	add(
		cfRow{sec: "RFC 9213 §2.1", name: "CDN-Cache-Control takes precedence over Cache-Control", origin: []cfOrigin{cdn("max-age=120", "max-age=10", "A")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 60 * time.Second, body: "A", cs: csHit(60), hdr: []string{"Cache-Control", "max-age=10"}, hits: 1},
		}},
		twice("RFC 9213 §2.1", "CDN-Cache-Control max-age overrides Cache-Control no-store", cdn("max-age=60", "no-store", "A"), nil, true),
		twice("RFC 9213 §2.1", "CDN-Cache-Control max-age overrides Cache-Control private", cdn("max-age=60", "private", "A"), nil, true),
		twice("RFC 9213 §2.1", "CDN-Cache-Control no-store overrides Cache-Control max-age", cdn("no-store", "max-age=60", "A"), nil, false),
		twice("RFC 9213 §2.1", "CDN-Cache-Control private overrides Cache-Control public", cdn("private", "public, max-age=60", "A"), nil, false),
		cfRow{sec: "RFC 9213 §2.1", name: "an invalid CDN-Cache-Control is ignored", origin: []cfOrigin{cdn("max-age=60, &&&", "max-age=30", "A")}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(30), hits: 1},
		}},
		cfRow{sec: "RFC 9213 §2.1", name: "CDN-Cache-Control over Surrogate-Control", origin: []cfOrigin{{hdr: []string{"CDN-Cache-Control", "max-age=30", "Surrogate-Control", "max-age=300"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{body: "A", cs: csHit(30), hits: 1},
		}},
		cfRow{sec: "Edge Architecture 1.0 Surrogate-Control", name: "Surrogate-Control over Cache-Control, removed for clients", origin: []cfOrigin{{hdr: []string{"Surrogate-Control", "max-age=300", "Cache-Control", "max-age=10"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: csMiss, hdr: []string{"Surrogate-Control", ""}, hits: 1},
			{body: "A", cs: csHit(300), hdr: []string{"Surrogate-Control", "", "Cache-Control", "max-age=10"}, hits: 1},
		}},
	)

	// RFC 9110 §13: conditional requests answered from the cache.
	notMod := func(req ...string) cfStep {
		return cfStep{req: req, status: 304, cs: csHit(600),
			hdr: []string{"ETag", `"v1"`, "Cache-Control", "max-age=600", "Content-Type", "", "Last-Modified", "{t0-1h}"}}
	}
	whole := func(req ...string) cfStep { return cfStep{req: req, body: body26, cs: csHit(600)} }
	failed := func(req ...string) cfStep {
		return cfStep{req: req, status: 412, cs: csHit(600), hdr: []string{"ETag", "", "Content-Length", "0"}}
	}
	add(
		docThen("RFC 9110 §13.1.2", "If-None-Match matching is 304", notMod("If-None-Match", `"v1"`)),
		docThen("RFC 9110 §13.1.2", "If-None-Match compares weakly", notMod("If-None-Match", `W/"v1"`)),
		docThen("RFC 9110 §13.1.2", "If-None-Match list", notMod("If-None-Match", `"x", "v1"`)),
		docThen("RFC 9110 §13.1.2", "If-None-Match: * matches a stored representation", notMod("If-None-Match", "*")),
		docThen("RFC 9110 §13.1.2", "If-None-Match not matching is 200", whole("If-None-Match", `"v2"`)),
		docThen("RFC 9110 §13.1.3", "If-Modified-Since at Last-Modified is 304", notMod("If-Modified-Since", "{t0-1h}")),
		docThen("RFC 9110 §13.1.3", "If-Modified-Since before Last-Modified is 200", whole("If-Modified-Since", "{t0-2h}")),
		docThen("RFC 9110 §13.1.3", "an invalid If-Modified-Since is ignored", whole("If-Modified-Since", "yesterday")),
		docThen("RFC 9110 §13.1.3", "If-Modified-Since is ignored with If-None-Match", whole("If-None-Match", `"v2"`, "If-Modified-Since", "{t0-1h}")),
		docThen("RFC 9110 §13.1.1", "If-Match matching is 200", whole("If-Match", `"v1"`)),
		docThen("RFC 9110 §13.1.1", "If-Match: * is 200", whole("If-Match", "*")),
		docThen("RFC 9110 §13.1.1", "If-Match not matching is 412", failed("If-Match", `"v2"`)),
		docThen("RFC 9110 §13.1.1", "If-Match compares strongly", failed("If-Match", `W/"v1"`)),
		docThen("RFC 9110 §13.1.4", "If-Unmodified-Since at Last-Modified is 200", whole("If-Unmodified-Since", "{t0-1h}")),
		docThen("RFC 9110 §13.1.4", "If-Unmodified-Since before Last-Modified is 412", failed("If-Unmodified-Since", "{t0-2h}")),
		cfRow{sec: "RFC 9110 §13.2.1", name: "a conditional miss fills unconditionally and is answered from the response (policy)", origin: []cfOrigin{cfDoc}, steps: []cfStep{
			{req: []string{"If-None-Match", `"v1"`}, status: 304, cs: csMiss, hdr: []string{"ETag", `"v1"`}, upstream: []string{"If-None-Match", "", "If-Modified-Since", ""}, hits: 1},
			{body: body26, cs: csHit(600), hits: 1},
		}},
		docThen("RFC 9110 §13.2.2", "a precondition is evaluated before Range", func() cfStep {
			s := notMod("If-None-Match", `"v1"`)
			s.req = append(s.req, "Range", "bytes=0-4")
			return s
		}()),
		cfRow{sec: "RFC 9110 §13.2.1", name: "preconditions are ignored for a non-2xx stored response", origin: []cfOrigin{{status: 404, hdr: []string{"Cache-Control", "max-age=60", "ETag", `"n"`}, body: "no"}}, steps: []cfStep{
			{status: 404, body: "no", hits: 1},
			{req: []string{"If-Match", `"x"`}, status: 404, body: "no", cs: csHit(60), hits: 1},
			{req: []string{"If-None-Match", `"n"`}, status: 404, body: "no", cs: csHit(60), hits: 1},
		}},
		docThen("RFC 9110 §13.1.2", "HEAD with If-None-Match is 304", cfStep{method: "HEAD", req: []string{"If-None-Match", `"v1"`}, status: 304, cs: csHit(600)}),
	)

	// RFC 9110 §14: range requests answered from the cache.
	partial := func(rng, want, crange string) cfStep {
		return cfStep{req: []string{"Range", rng}, status: 206, body: want, cs: csHit(600),
			hdr: []string{"Content-Range", crange, "Content-Length", fmt.Sprint(len(want))}}
	}
	add(
		docThen("RFC 9110 §14.1.2", "a single range", partial("bytes=0-4", "abcde", "bytes 0-4/26")),
		docThen("RFC 9110 §14.1.2", "a suffix range", partial("bytes=-3", "xyz", "bytes 23-25/26")),
		docThen("RFC 9110 §14.1.2", "an open range", partial("bytes=20-", "uvwxyz", "bytes 20-25/26")),
		docThen("RFC 9110 §14.1.2", "a range past the end is clipped", partial("bytes=24-100", "yz", "bytes 24-25/26")),
		docThen("RFC 9110 §14.1.2", "a suffix longer than the representation is all of it", partial("bytes=-100", body26, "bytes 0-25/26")),
		docThen("RFC 9110 §14.3", "overlapping ranges are merged (policy)", partial("bytes=0-5,3-9", "abcdefghij", "bytes 0-9/26")),
		docThen("RFC 9110 §15.5.17", "an unsatisfiable range is 416 with bytes */N", cfStep{req: []string{"Range", "bytes=30-40"}, status: 416, cs: csHit(600),
			hdr: []string{"Content-Range", "bytes */26", "Content-Type", ""}}),
		docThen("RFC 9110 §14.2", "a malformed range is ignored", whole("Range", "bytes=5-1")),
		docThen("RFC 9110 §14.2", "another range unit is ignored", whole("Range", "items=0-1")),
		docThen("RFC 9110 §14.2", "Range on HEAD is ignored", cfStep{method: "HEAD", req: []string{"Range", "bytes=0-4"}, cs: csHit(600), hdr: []string{"Content-Length", "26", "Content-Range", ""}}),
		docThen("RFC 9110 §13.1.5", "If-Range with the strong ETag", partial("bytes=0-1", "ab", "bytes 0-1/26")),
		docThen("RFC 9110 §13.1.5", "If-Range with another ETag gets the whole", whole("Range", "bytes=0-1", "If-Range", `"v0"`)),
		docThen("RFC 9110 §13.1.5", "If-Range with a weak ETag gets the whole", whole("Range", "bytes=0-1", "If-Range", `W/"v1"`)),
		docThen("RFC 9110 §13.1.5", "If-Range with Last-Modified", func() cfStep {
			s := partial("bytes=0-1", "ab", "bytes 0-1/26")
			s.req = append(s.req, "If-Range", "{t0-1h}")
			return s
		}()),
		cfRow{sec: "RFC 9110 §13.1.5", name: "If-Range with a weak Last-Modified (equal to Date) gets the whole", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=600", "Last-Modified", "{t0}"}, body: body26}}, steps: []cfStep{
			{body: body26, cs: csMiss, hits: 1},
			{req: []string{"Range", "bytes=0-1", "If-Range", "{t0}"}, body: body26, cs: csHit(600), hits: 1},
		}},
		docThen("RFC 9110 §13.1.5", "If-Range with another date gets the whole", whole("Range", "bytes=0-1", "If-Range", "{t0-2h}")),
		cfRow{sec: "RFC 9110 §14.6", name: "distant ranges are multipart/byteranges", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=600", "Content-Type", "text/plain"}, body: cfLong}}, steps: []cfStep{
			{body: cfLong, cs: csMiss, hits: 1},
			{req: []string{"Range", "bytes=0-1,-2"}, status: 206, cs: csHit(600), hits: 1,
				check: wantParts("text/plain", "bytes 0-1/1040", "ab", "bytes 1038-1039/1040", "yz")},
		}},
		cfRow{sec: "RFC 9110 §14.2", name: "a cold Range request is answered from the whole response (policy)", origin: []cfOrigin{cfDoc}, steps: []cfStep{
			{req: []string{"Range", "bytes=0-4"}, status: 206, body: "abcde", csHas: "fwd=miss", hdr: []string{"Content-Range", "bytes 0-4/26"}, hits: 1},
			{body: body26, cs: csHit(600), hits: 1},
		}},
		cfRow{sec: "RFC 9110 §14.2", name: "more than 32 parts gets the whole representation (policy)", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=600"}, body: strings.Repeat("0123456789", 400)}}, steps: []cfStep{
			{body: strings.Repeat("0123456789", 400), cs: csMiss, hits: 1},
			{req: []string{"Range", manyRanges(33, 100)}, body: strings.Repeat("0123456789", 400), cs: csHit(600), hdr: []string{"Content-Range", ""}, hits: 1},
		}},
		cfRow{sec: "RFC 9110 §14.6", name: "32 parts are served as multipart", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=600"}, body: strings.Repeat("0123456789", 400)}}, steps: []cfStep{
			{body: strings.Repeat("0123456789", 400), cs: csMiss, hits: 1},
			{req: []string{"Range", manyRanges(32, 100)}, status: 206, cs: csHit(600), hits: 1, check: func(t *testing.T, resp *http.Response, body string) {
				assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges; boundary="), resp.Header.Get("Content-Type"))
				assert.Equal(t, 32, strings.Count(body, "Content-Range: bytes "))
			}},
		}},
		cfRow{sec: "RFC 9110 §14.1.1", name: "any range of an empty representation is unsatisfiable", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=600"}}}, steps: []cfStep{
			{cs: csMiss, hits: 1},
			{req: []string{"Range", "bytes=0-0"}, status: 416, cs: csHit(600), hdr: []string{"Content-Range", "bytes */0"}, hits: 1},
		}},
		cfRow{sec: "RFC 9110 §14.2", name: "Range on a stored 404 is ignored", origin: []cfOrigin{{status: 404, hdr: []string{"Cache-Control", "max-age=60"}, body: "not here"}}, steps: []cfStep{
			{status: 404, body: "not here", hits: 1},
			{req: []string{"Range", "bytes=0-1"}, status: 404, body: "not here", cs: csHit(60), hdr: []string{"Content-Range", ""}, hits: 1},
		}},
	)

	// RFC 9110 §9.3.2: HEAD.
	add(
		docThen("RFC 9110 §9.3.2", "HEAD is answered from a stored GET", cfStep{method: "HEAD", cs: csHit(600), hdr: []string{"Content-Length", "26", "ETag", `"v1"`}}),
		cfRow{sec: "RFC 9110 §9.3.2", name: "a HEAD miss fills with GET (policy)", origin: []cfOrigin{cfDoc}, steps: []cfStep{
			{method: "HEAD", cs: csMiss, hdr: []string{"Content-Length", "26"}, upstream: []string{":method", "GET"}, hits: 1},
			{body: body26, cs: csHit(600), hits: 1},
		}},
	)

	// RFC 9211: Cache-Status.
	add(
		cfRow{sec: "RFC 9211 §2", name: "upstream entries come first on a miss, a hit is this node's alone (policy)", origin: []cfOrigin{{hdr: []string{"Cache-Control", "max-age=60", "Cache-Status", "shield; hit; ttl=30"}, body: "A"}}, steps: []cfStep{
			{body: "A", cs: "shield; hit; ttl=30, " + csMiss, hits: 1},
			{body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9211 §2.3", name: "fwd-status is the status upstream answered", origin: []cfOrigin{{status: 404, hdr: []string{"Cache-Control", "max-age=60"}, body: "no"}}, steps: []cfStep{
			{status: 404, body: "no", cs: "test-edge; fwd=miss; fwd-status=404; stored", hits: 1},
			{status: 404, body: "no", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9211 §2.2", name: "fwd=bypass while a key is hit-for-miss, then miss again", origin: []cfOrigin{respCC("private", "A")}, steps: []cfStep{
			{body: "A", cs: csUncache("private"), hits: 1},
			{advance: 5 * time.Second, body: "A", cs: csBypass("private"), hits: 2},
			{advance: 11 * time.Second, body: "A", cs: csUncache("private"), hits: 3},
		}},
		cfRow{sec: "RFC 9211 §2.4", name: "ttl counts down with Age", origin: []cfOrigin{cf60}, steps: []cfStep{
			{body: "A", cs: csMiss, hits: 1},
			{advance: 59 * time.Second, body: "A", cs: csHit(1), hdr: []string{"Age", "59"}, hits: 1},
		}},
	)

	// RFC 9111 §2 and RFC 3986 §6: the cache key.
	add(
		cfRow{sec: "RFC 3986 §6.2.2", name: "dot segments are removed", origin: []cfOrigin{cf60}, steps: []cfStep{
			{path: "/x/../r", body: "A", cs: csMiss, hits: 1},
			{path: "/r", body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 3986 §6.2.2", name: "percent-encoded unreserved characters are decoded", origin: []cfOrigin{cf60}, steps: []cfStep{
			{path: "/%7Er", body: "A", cs: csMiss, hits: 1},
			{path: "/~r", body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 3986 §6.2.3", name: "host case and default port are normalised", origin: []cfOrigin{cf60}, steps: []cfStep{
			{req: []string{"Host", "EXAMPLE.com"}, body: "A", cs: csMiss, hits: 1},
			{req: []string{"Host", "example.com:80"}, body: "A", cs: csHit(60), hits: 1},
		}},
		cfRow{sec: "RFC 9111 §2", name: "the query is part of the key", origin: []cfOrigin{cf60, cf60B}, steps: []cfStep{
			{path: "/r?a=1", body: "A", cs: csMiss, hits: 1},
			{path: "/r?a=2", body: "B", cs: csMiss, hits: 2},
			{path: "/r?a=1", body: "A", cs: csHit(60), hits: 2},
		}},
		cfRow{sec: "RFC 9111 §2", name: "SortQuery shares an object between parameter orders (policy)", cfg: func(c *edge.Config) { c.Hosts[0].Key.SortQuery = true }, origin: []cfOrigin{cf60}, steps: []cfStep{
			{path: "/r?b=2&a=1", body: "A", cs: csMiss, upstream: []string{":uri", "/r?a=1&b=2"}, hits: 1},
			{path: "/r?a=1&b=2", body: "A", cs: csHit(60), hits: 1},
		}},
	)
	return rows
}

// TestConformance runs the conformance rows, one subtest per row named by
// its section. Rows marked skip document known bugs; set
// OUTPOST_CONFORMANCE_KNOWN_BUGS=1 to run them anyway.
func TestConformance(t *testing.T) {
	for _, row := range conformanceRows() {
		t.Run(row.sec+"/"+row.name, func(t *testing.T) {
			t.Parallel()
			if row.skip != "" {
				if os.Getenv("OUTPOST_CONFORMANCE_KNOWN_BUGS") == "" {
					t.Skip(row.skip)
				}
			}
			runConformance(t, row)
		})
	}
}

func runConformance(t *testing.T, row cfRow) {
	t0 := time.Now().Truncate(time.Second)
	var clk atomic.Pointer[clock]
	var served atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		i := int(served.Add(1)) - 1
		if len(row.origin) == 0 {
			http.Error(w, "unscripted origin request", http.StatusTeapot)
			return
		}
		o := row.origin[min(i, len(row.origin)-1)]
		if o.hangUp {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		now := clk.Load().Now()
		replaced := map[string]bool{}
		for j := 0; j+1 < len(o.hdr); j += 2 {
			name := http.CanonicalHeaderKey(o.hdr[j])
			if !replaced[name] {
				w.Header().Del(name)
				replaced[name] = true
			}
			w.Header().Add(name, expandTime(o.hdr[j+1], t0, now))
		}
		status := o.status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		io.WriteString(w, o.body)
	}, cfMods(row)...)
	e.clock.mu.Lock()
	e.clock.now = t0
	e.clock.mu.Unlock()
	clk.Store(e.clock)

	for i, s := range row.steps {
		e.clock.Advance(s.advance)
		now := e.clock.Now()
		method := s.method
		if method == "" {
			method = http.MethodGet
		}
		path := s.path
		if path == "" {
			path = "/r"
		}
		req := make([]string, len(s.req))
		for j, v := range s.req {
			req[j] = expandTime(v, t0, now)
		}
		resp, body := e.do(t, method, path, req...)
		e.quiesce(t) // background revalidations and commits
		what := fmt.Sprintf("step %d: %s %s %v", i+1, method, path, req)

		status := s.status
		if status == 0 {
			status = http.StatusOK
		}
		assert.Equal(t, status, resp.StatusCode, "%s: status", what)
		if s.check != nil {
			s.check(t, resp, body)
		} else {
			assert.Equal(t, s.body, body, "%s: body", what)
		}
		if s.cs != "" {
			assert.Equal(t, s.cs, resp.Header.Get("Cache-Status"), "%s: Cache-Status", what)
		}
		if s.csHas != "" {
			assert.Contains(t, resp.Header.Get("Cache-Status"), s.csHas, "%s: Cache-Status", what)
		}
		for j := 0; j+1 < len(s.hdr); j += 2 {
			name, want := s.hdr[j], expandTime(s.hdr[j+1], t0, now)
			if want == "" {
				assert.Empty(t, resp.Header.Values(name), "%s: %s must be absent", what, name)
				continue
			}
			assert.Equal(t, want, resp.Header.Get(name), "%s: %s", what, name)
		}
		assert.Equal(t, s.hits, e.origin.hits.Load(), "%s: origin requests", what)
		if len(s.upstream) > 0 {
			up, _ := e.origin.lastRequest(t)
			for j := 0; j+1 < len(s.upstream); j += 2 {
				name, want := s.upstream[j], expandTime(s.upstream[j+1], t0, now)
				var got string
				switch name {
				case ":method":
					got = up.Method
				case ":uri":
					got = up.URL.RequestURI()
				default:
					got = strings.Join(up.Header.Values(name), ", ")
				}
				assert.Equal(t, want, got, "%s: upstream %s", what, name)
			}
		}
	}
}

func cfMods(row cfRow) []func(*edge.Config) {
	if row.cfg == nil {
		return nil
	}
	return []func(*edge.Config){row.cfg}
}

// manyRanges is a Range value of n one-byte ranges gap bytes apart.
func manyRanges(n, gap int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i*gap, i*gap)
	}
	return "bytes=" + strings.Join(parts, ",")
}

// expandTime replaces a clock template ("{t0}", "{now-10h}") with an HTTP
// date; other values are returned as they are.
func expandTime(v string, t0, now time.Time) string {
	if !strings.HasPrefix(v, "{") || !strings.HasSuffix(v, "}") {
		return v
	}
	inner := v[1 : len(v)-1]
	var base time.Time
	switch {
	case strings.HasPrefix(inner, "t0"):
		base, inner = t0, inner[2:]
	case strings.HasPrefix(inner, "now"):
		base, inner = now, inner[3:]
	default:
		return v
	}
	if inner != "" {
		d, err := time.ParseDuration(inner)
		if err != nil {
			panic("bad clock template " + v)
		}
		base = base.Add(d)
	}
	return base.UTC().Format(http.TimeFormat)
}

// wantParts checks a multipart/byteranges body (RFC 9110 §14.6): each part's
// Content-Type, then Content-Range and bytes, in order.
func wantParts(ctype string, rangesAndBodies ...string) func(t *testing.T, resp *http.Response, body string) {
	return func(t *testing.T, resp *http.Response, body string) {
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "multipart/byteranges", mt)
		assert.Equal(t, fmt.Sprint(len(body)), resp.Header.Get("Content-Length"), "exact Content-Length")
		assert.Empty(t, resp.Header.Get("Content-Range"), "a multipart response has no top-level Content-Range")
		mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
		for i := 0; i+1 < len(rangesAndBodies); i += 2 {
			p, err := mr.NextPart()
			require.NoError(t, err, "part %d", i/2+1)
			b, err := io.ReadAll(p)
			require.NoError(t, err)
			assert.Equal(t, ctype, p.Header.Get("Content-Type"))
			assert.Equal(t, rangesAndBodies[i], p.Header.Get("Content-Range"))
			assert.Equal(t, rangesAndBodies[i+1], string(b))
		}
		_, err = mr.NextPart()
		assert.Equal(t, io.EOF, err, "no more parts")
	}
}
