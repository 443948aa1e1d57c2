package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Error is the error RoundTrip returns when an upstream server failed before
// sending a response, and the error a response body's Read returns when the
// server failed while sending it. Server names the server; Err is the cause,
// which may wrap context.DeadlineExceeded, a *net.OpError, a TLS error or
// ErrBodyTimeout. Its text may name internal hosts: log it, never send it to
// a client.
type Error struct {
	// Server is the server's URL, scheme://host[:port].
	Server string
	// Err is the cause.
	Err error
	// stale: the request went out on a reused keep-alive connection that
	// turned out closed (EOF or reset before any response): the server
	// most likely closed it while idle and never saw the request.
	stale bool
}

// Error returns "origin <server>: <cause>".
func (e *Error) Error() string { return "origin " + e.Server + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the exchange failed because something took too long:
// a dial, a TLS handshake, the response headers, an idle body read or the
// request's own deadline. An edge answers such a failure with 504 rather
// than 502.
func (e *Error) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

var (
	// ErrNoServers is returned by New and NewShield for a configuration
	// without servers.
	ErrNoServers = errors.New("origin: no servers")

	// ErrClosed is returned by RoundTrip after Close.
	ErrClosed = errors.New("origin: closed")

	// ErrBodyTimeout is the cause (inside an *Error) of a response body Read
	// that failed because the server sent nothing for longer than
	// Timeouts.IdleRead. It is a net.Error whose Timeout method reports true.
	ErrBodyTimeout error = timeoutError("response body idle timeout")
)

// timeoutError is a net.Error that is always a timeout.
type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// connectError marks a failure to establish a connection (dial or TLS
// handshake): the request was never sent, so it may be retried whatever its
// method.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// lostConn reports whether err is a connection that closed or reset under
// a request before any response: what a server's idle close looks like to
// a client that reused the connection at the same moment.
func lostConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "server closed idle connection")
}
