package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// The access log: one line per request on the public listener, in one of
// three formats, to standard error with the other logs or to a file of its
// own that SIGUSR1 reopens (for logrotate).
//
//   - text and json: slog lines (msg=request) with method, host, uri,
//     status, bytes, duration, cache (the Cache-Status field), remote,
//     upstream_time and upstream_bytes.
//   - combined: the NCSA combined format that nginx, Apache and log
//     analysers know, with three fields appended: the Cache-Status field
//     quoted, the upstream time in seconds and the upstream body bytes ("-"
//     when the request went nowhere upstream: a hit, or a waiter on another
//     request's fill).
//
// Upstream time and bytes sum every exchange made on the request's behalf
// (a sliced range may make several), each timed from the request sent to
// its body's end.

// accessFormats are the values of log.access_format.
var accessFormats = []string{"text", "json", "combined"}

// accessLogger writes access log lines. Safe for concurrent use.
type accessLogger struct {
	format string
	file   *logFile     // nil: standard error
	slog   *slog.Logger // text and json
	w      io.Writer    // combined
	now    func() time.Time
}

// newAccessLogger makes the access log s asks for, or nil when it is off.
// Without a file, text and json lines go through the node's logger.
func newAccessLogger(s *settings, log *slog.Logger) (*accessLogger, error) {
	if !s.accessLog {
		return nil, nil
	}
	al := &accessLogger{format: s.accessFormat, now: time.Now, slog: log, w: os.Stderr}
	if s.accessFile != "" {
		f, err := openLogFile(s.accessFile)
		if err != nil {
			return nil, badField("log.access_file", 0, "%v", err)
		}
		al.file, al.w = f, f
		opts := &slog.HandlerOptions{Level: slog.LevelInfo}
		switch al.format {
		case "json":
			al.slog = slog.New(slog.NewJSONHandler(f, opts))
		case "text":
			al.slog = slog.New(slog.NewTextHandler(f, opts))
		}
	} else if al.format != "combined" && al.format != s.logFormat {
		al.slog = newLogger(os.Stderr, al.format)
	}
	return al, nil
}

// line is what one request's log line says.
type line struct {
	r      *http.Request
	status int
	bytes  int64
	start  time.Time
	took   time.Duration
	cache  string
	ex     *exchange
}

// log writes one request's line.
func (al *accessLogger) log(l *line) {
	if al.format == "combined" {
		buf := combinedPool.Get().(*[]byte)
		b := appendCombined((*buf)[:0], l)
		al.w.Write(b)
		*buf = b
		combinedPool.Put(buf)
		return
	}
	attrs := []slog.Attr{
		slog.String("method", l.r.Method),
		slog.String("host", l.r.Host),
		slog.String("uri", l.r.RequestURI),
		slog.String("proto", l.r.Proto),
		slog.Int("status", l.status),
		slog.Int64("bytes", l.bytes),
		slog.Duration("duration", l.took),
		slog.String("cache", l.cache),
		slog.String("remote", l.r.RemoteAddr),
	}
	if l.ex != nil && l.ex.count.Load() > 0 {
		attrs = append(attrs, slog.Duration("upstream_time", time.Duration(l.ex.nanos.Load())), slog.Int64("upstream_bytes", l.ex.bytes.Load()))
	}
	al.slog.LogAttrs(l.r.Context(), slog.LevelInfo, "request", attrs...)
}

var combinedPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendCombined appends l in the combined format with Outpost's three
// fields, and a newline:
//
//	127.0.0.1 - - [02/Jan/2006:15:04:05 -0700] "GET /a.css HTTP/1.1" 200 512 "-" "curl/8" "outpost; hit; ttl=50" - -
func appendCombined(b []byte, l *line) []byte {
	host, _, err := net.SplitHostPort(l.r.RemoteAddr)
	if err != nil {
		host = l.r.RemoteAddr
	}
	b = append(b, host...)
	b = append(b, " - - ["...)
	b = l.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] "...)
	b = appendQuoted(b, l.r.Method+" "+l.r.RequestURI+" "+l.r.Proto)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, ' ')
	if l.bytes == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, l.bytes, 10)
	}
	b = append(b, ' ')
	b = appendQuoted(b, l.r.Header.Get("Referer"))
	b = append(b, ' ')
	b = appendQuoted(b, l.r.Header.Get("User-Agent"))
	b = append(b, ' ')
	b = appendQuoted(b, l.cache)
	if l.ex != nil && l.ex.count.Load() > 0 {
		b = append(b, ' ')
		b = strconv.AppendFloat(b, time.Duration(l.ex.nanos.Load()).Seconds(), 'f', 3, 64)
		b = append(b, ' ')
		b = strconv.AppendInt(b, l.ex.bytes.Load(), 10)
	} else {
		b = append(b, " - -"...)
	}
	return append(b, '\n')
}

// appendQuoted appends s in double quotes, "-" when empty, escaping quotes,
// backslashes and bytes outside printable ASCII as \xHH (as nginx does), so
// a client cannot forge a line or a field.
func appendQuoted(b []byte, s string) []byte {
	if s == "" {
		return append(b, `"-"`...)
	}
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// reopen reopens the log file (after logrotate moved it); without a file
// it does nothing.
func (al *accessLogger) reopen() error {
	if al == nil || al.file == nil {
		return nil
	}
	return al.file.reopen()
}

// close closes the log file, if any.
func (al *accessLogger) close() error {
	if al == nil || al.file == nil {
		return nil
	}
	return al.file.close()
}

// logFile is a file appended to, one Write per line, that can be reopened
// under its name. Safe for concurrent use.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (lf *logFile) Write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return 0, os.ErrClosed
	}
	return lf.f.Write(p)
}

// reopen opens the path anew and closes the old file; if the path cannot
// be opened, the old file stays in use and the error says why.
func (lf *logFile) reopen() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	lf.mu.Lock()
	old := lf.f
	lf.f = f
	lf.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

func (lf *logFile) close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return nil
	}
	err := lf.f.Close()
	lf.f = nil
	return err
}

// recorder notes the status and body bytes of a response while keeping
// the writer's optional capabilities (Flush, ReadFrom for sendfile,
// Unwrap for http.ResponseController), and when its header went out.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	started bool     // the header was written
	traffic *traffic // told when the response begins; nil: none
	key     []byte   // scratch for the traffic counters
}

func (r *recorder) start() {
	if !r.started {
		r.started = true
		if r.traffic != nil {
			r.traffic.waiting.Add(-1)
		}
	}
}

func (r *recorder) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		r.status = code
		r.start()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.start()
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.start()
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	r.start()
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
