// Package storage holds cached HTTP responses: their metadata and their bodies.
//
// A Tier maps a key (a string the edge computes from the request) to an Object.
// Objects are written through a Writer obtained from Put: nothing is visible to
// Get until Commit succeeds, and Abort (or a failed Commit) leaves the tier as
// it was, so a half-written body can never be read back as a whole one. While a
// write is in progress the Writer itself is an io.ReaderAt over the bytes
// written so far; that is how requests coalesced onto one origin fetch read the
// body as it arrives.
//
// Meta is what a tier keeps beside the body: status, headers, the clock facts
// RFC 9111 needs to compute Age and freshness, and the names purges match on
// (URL and surrogate keys). Tiers store Meta verbatim and never interpret HTTP.
//
// The package imports nothing else of Outpost. Every Tier implementation runs
// the conformance suite in package storagetest.
package storage
