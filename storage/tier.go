package storage

import (
	"context"
	"errors"
	"io"
)

// Errors reported by tiers. Callers branch on them with errors.Is.
var (
	// ErrNotFound reports that a tier holds no committed object for a key.
	ErrNotFound = errors.New("storage: not found")
	// ErrTooLarge reports that an object exceeds what a tier accepts, either
	// from its declared size at Put or as bytes arrive at Write.
	ErrTooLarge = errors.New("storage: object too large")
	// ErrSizeMismatch reports a Commit whose body length differs from the
	// size declared at Put: the body was cut short or ran long.
	ErrSizeMismatch = errors.New("storage: body length differs from declared size")
	// ErrClosed reports use of a Writer after Commit or Abort, or of a closed tier.
	ErrClosed = errors.New("storage: closed")
	// ErrNotAdmitted reports a Commit whose body was whole and valid but
	// that the tier's admission policy declined to keep (a memory tier
	// that prefers what it holds). Nothing was published; a Get finds the
	// previous object under the key, if any, or nothing.
	ErrNotAdmitted = errors.New("storage: not admitted")
)

// Tier stores objects by key. Implementations are safe for concurrent use.
//
// Put starts a write of a new object under m.Key; the previous object under
// that key (if any) stays visible until Commit replaces it. Get returns
// ErrNotFound when no committed object exists. Update replaces the metadata of
// a committed object without touching its body (a 304 revalidation, RFC 9111
// §4.3.4). Delete removes an object; deleting a missing key is not an error.
type Tier interface {
	Get(ctx context.Context, key string) (Object, error)
	Put(ctx context.Context, m Meta) (Writer, error)
	Update(ctx context.Context, m Meta) error
	Delete(ctx context.Context, key string) error
}

// Object is a committed object read from a tier. Its body is immutable: ReadAt
// may be called concurrently, and keeps working after the key is replaced or
// deleted, until Close. Callers must not modify the Meta it returns.
type Object interface {
	io.ReaderAt
	// Meta returns the object's metadata; Meta().Size is the body length.
	Meta() *Meta
	// Close releases what the object holds (file descriptors). It is safe to
	// call more than once.
	Close() error
}

// Writer receives the body of an object being stored.
//
// Write appends to the body. ReadAt reads from the bytes written so far and
// may be called concurrently with Write from other goroutines: a read that
// reaches past what has been written returns the bytes available and io.EOF.
// Commit publishes the object: it fails with ErrSizeMismatch when the body
// length differs from a declared Meta.Size, and then publishes nothing. Abort
// discards the write. After Commit or Abort, Write fails with ErrClosed while
// ReadAt keeps serving the bytes written, so readers that were following the
// write can finish from it. Close releases the writer (file descriptors,
// buffers): it discards a write neither committed nor aborted, and ReadAt
// fails afterwards. Every Writer must be closed; `defer w.Close()` is the
// idiom, with the last follower closing when others read on.
type Writer interface {
	io.Writer
	io.ReaderAt
	Commit() error
	Abort() error
	Close() error
}

// Walker is implemented by tiers that can list what they hold. Walk calls fn
// with the metadata of every committed object, in no particular order, until
// fn returns an error (which Walk returns) or the context is done. fn must
// not modify the Meta, and may call the tier's other methods. Walk returns
// an error, too, when it could not list every object a Get might serve (a
// file it could not read): a caller such as a purge sweeper must then not
// take the walk as complete.
type Walker interface {
	Walk(ctx context.Context, fn func(m *Meta) error) error
}

// RangeWriter is implemented by objects that copy part of their body to w
// more cheaply than through ReadAt: memory objects write their chunks without
// a buffer, file objects let the kernel copy (sendfile(2)) when w is a network
// connection. WriteRange copies n bytes starting at off and returns the count
// copied; reaching the end of the body first is io.ErrUnexpectedEOF.
type RangeWriter interface {
	WriteRange(w io.Writer, off, n int64) (int64, error)
}
