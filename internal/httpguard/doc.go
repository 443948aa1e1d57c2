// Package httpguard enforces strict HTTP/1.1 message framing and request
// head limits on the bytes a net/http server reads, where net/http gives no
// hook: it deletes a Content-Length sent beside Transfer-Encoding before a
// handler runs (golang/go#80942), accepts obs-fold and bare LF line ends,
// and has no limit on the number of header fields.
//
// A Conn sits between a net.Conn and net/http. It follows the framing of
// every request on the connection (RFC 9112 §6: heads, Content-Length and
// chunked bodies, trailers, pipelining) as net/http reads it, and holds a
// request head back until the head is complete and checked. A head that is
// ambiguous or over a limit is never passed on: in its place net/http reads
// a short synthetic request that Guard.Handler answers with the status for
// the fault (400, 405, 408, 414 or 431) and "Connection: close", and after
// it the connection reads as ended. So nothing after an ambiguous head is
// ever parsed as a request, and bytes net/http parsed were framed the same
// way by the Conn (the desync that request smuggling needs cannot happen).
//
// Refused with 400: Content-Length with Transfer-Encoding (any case or
// spacing), more than one Content-Length or Transfer-Encoding field, a
// Content-Length that is not 1*DIGIT, a transfer coding other than
// "chunked", Transfer-Encoding in an HTTP/1.0 request, obs-fold (a line
// starting with SP or HTAB), a bare LF, a version other than HTTP/1.0 and
// HTTP/1.1, a malformed request line or one with a fragment, a Host that is
// not a DNS name or bracketed IPv6 literal with an optional decimal port,
// an absolute-form target whose authority differs from Host, and malformed
// chunk-size lines. CONNECT gets 405: an edge is not a tunnel. Limits: 414
// for a long request line, 431 for a large head or too many fields, 408
// for a head that stalls. Everything else net/http checks itself (header
// names and values, methods) and answers 400 on its own.
//
// A body whose chunked framing turns bad after the handler has started
// ends the connection with a read error. HTTP/2 never passes through a
// Conn: ALPN "h2" connections go to net/http as they are.
package httpguard
