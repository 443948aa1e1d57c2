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
// Memory is the memory tier: S3-FIFO eviction with an adaptive small queue
// (package s3fifo), bodies in 4 KiB pages of an arena outside the Go heap
// (package arena), every object charged what it really costs against the
// budget. Disk is the disk tier: one file per object named by a hash of its
// key, written to a temporary file and renamed on commit, with a versioned
// header and body checksums verified before any byte written by an earlier
// process is served, size-aware S3-FIFO eviction, and an index rebuilt at
// start (Ready) so the cache is warm across restarts. Tiered puts Memory in
// front of Disk: an object that fits memory is committed there and its disk
// copy written behind, off the request path; large objects go to disk only;
// disk hits seen twice are promoted; a failing disk degrades to memory only.
//
// The package imports nothing else of Outpost. Every Tier implementation runs
// the conformance suite in package storagetest.
package storage
