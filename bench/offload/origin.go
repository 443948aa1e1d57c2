package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// origin serves the trace's objects and counts what it sends:
//
//	GET /obj/<id>/<size>   <size> bytes, the same for every request of <id>
//	GET /probe             a small object that is not counted
//
// Every response is cacheable for a day, with an ETag and Last-Modified;
// single ranges are honoured, so a cache that fetches large objects in
// slices (Outpost does, from 8 MiB) is served what it asks for.
type origin struct {
	pattern  []byte // bodies are windows into it
	requests atomic.Int64
	bytes    atomic.Int64
	srv      *http.Server
	ln       net.Listener
}

// patternSlack is how far apart the windows of two objects may start.
const patternSlack = 64 << 10

func newOrigin(addr string, maxSize int64) (*origin, error) {
	o := &origin{pattern: make([]byte, maxSize+patternSlack)}
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(o.pattern); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(o.pattern); j++ {
			o.pattern[i+j] = byte(v >> (8 * j))
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	o.ln = ln
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o, nil
}

func (o *origin) URL() string { return "http://" + o.ln.Addr().String() }

func (o *origin) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return o.srv.Shutdown(ctx)
}

func (o *origin) reset() {
	o.requests.Store(0)
	o.bytes.Store(0)
}

// body returns the bytes of object id, size long.
func (o *origin) body(id, size int64) []byte {
	off := (id * 4099) % patternSlack
	return o.pattern[off : off+size]
}

func parseObjPath(p string) (id, size int64, err error) {
	rest, ok := strings.CutPrefix(p, "/obj/")
	if !ok {
		return 0, 0, errors.New("not an object")
	}
	a, b, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, errors.New("want /obj/<id>/<size>")
	}
	if id, err = strconv.ParseInt(a, 10, 64); err != nil || id < 0 {
		return 0, 0, errors.New("bad id")
	}
	if size, err = strconv.ParseInt(b, 10, 64); err != nil || size < 0 {
		return 0, 0, errors.New("bad size")
	}
	return id, size, nil
}

var lastModified = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(http.TimeFormat)

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("Last-Modified", lastModified)
	if r.URL.Path == "/probe" {
		h.Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
		return
	}
	id, size, err := parseObjPath(r.URL.Path)
	if err != nil || size > int64(len(o.pattern))-patternSlack {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	o.requests.Add(1)
	body := o.body(id, size)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, id, size))
	h.Set("Accept-Ranges", "bytes")
	status := http.StatusOK
	if start, end, ok := parseRange(r.Header.Get("Range"), size); ok {
		body = body[start : end+1]
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		status = http.StatusPartialContent
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(body)
	o.bytes.Add(int64(n))
}

// parseRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n" range
// that fits a body of size bytes.
func parseRange(v string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") || size == 0 {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	var err error
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, true
	case b == "":
		end = size - 1
	default:
		if end, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 || start >= size || end < start {
		return 0, 0, false
	}
	return start, min(end, size-1), true
}
