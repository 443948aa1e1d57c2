// Package origin sends a cache's misses upstream: to a pool of origin
// servers, or through the shield tier of parent nodes.
//
// A Pool is an http.RoundTripper over a set of origin servers. It receives a
// request whose URL names the resource as the client asked for it
// (http://static.example.com/img/a.png?x=1: that string is the object's cache
// key), picks a server by its Policy (RoundRobin, LeastRequests or
// Rendezvous, each weighted), rewrites the request's scheme, host, path
// prefix, Host header and headers for that server, and sends it over
// connections it keeps alive per server, HTTP/2 where a TLS server offers
// it. Dial, TLS handshake, response headers and each body read have their
// own timeouts.
//
// A Pool owns the health of its servers. Active checks (HealthCheck) are run
// by one loop per server that the Pool starts and Close stops; passive
// checks (Ejection) watch client traffic and eject a failing server for a
// back-off that grows while it keeps failing. A server that is down gets no
// client traffic; when all are down the least recently failed one is still
// tried. A request that failed to connect, or an idempotent one that failed
// before its response, is retried once on another server; a small buffered
// body is sent again, any other body never. Health shows in Servers, in
// metrics (outpost_origin_up{pool,server} and counters, with a
// prometheus.Registerer) and in one log line per change.
//
// A Pool whose Config has a Bucket fetches from an S3-compatible bucket
// (bucket.go): its servers are the bucket's endpoint, virtual-hosted or
// path-style; each request is reduced to what a bucket acts on (GET or
// HEAD, the path, Range and the preconditions) and signed with AWS
// Signature Version 4 by the aws-sdk-go-v2 signer with credentials from
// the provider the caller gives (cmd gives the SDK's standard chain); the
// bucket's 403 and 404 get a short Cache-Control (Bucket.NegativeTTL), so
// the edge caches a missing object only briefly without knowing it came
// from a bucket.
//
// A Shield is an http.RoundTripper that sends each request to the parent
// that is its key's home by rendezvous hashing (the same hashing as the
// Rendezvous policy), skips parents that are down, and sends requests to its
// origin RoundTripper when none is up.
//
// Errors before a response are *Error, whose Timeout method separates
// timeouts (an edge's 504) from other failures (502). The package maps no
// error to HTTP and detects no loops: both are the edge's. It imports
// nothing else of Outpost; the edge sees a Pool or a Shield only as an
// http.RoundTripper.
package origin
