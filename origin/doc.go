// Package origin sends a cache's misses upstream.
//
// A Pool is an http.RoundTripper over a set of origin servers: it receives a
// request whose URL names the resource as the client asked for it
// (http://static.example.com/a.png), picks a server, rewrites the request's
// scheme, host and path prefix for that server, and sends it over connections
// it keeps alive per server. The Host header the client sent is forwarded
// unless the pool is configured to send the server's own.
//
// The package imports nothing else of Outpost; the edge sees a Pool only as
// an http.RoundTripper.
package origin
