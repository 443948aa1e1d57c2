package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The objects of the benchmark. Each path's bytes depend on the path, so a
// cache that served the wrong object would be caught by the length or,
// in warm, the content check.
var (
	hotPaths     = []string{"/obj/1k/hot", "/obj/64k/hot", "/obj/1m/hot", "/obj/1k/probe"}
	lastModified = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
)

func manyPath(i int) string { return fmt.Sprintf("/obj/1k/k%05d", i) }

// parseSize reads "1k", "64k", "1m" or a byte count.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 64<<20/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// objectSize parses /obj/<size>/<name> or /slow/<ms>/<size>/<name>,
// returning the size and the delay.
func objectSize(path string) (size int, delay time.Duration, err error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "obj":
		size, err = parseSize(parts[1])
	case len(parts) == 4 && parts[0] == "slow":
		var ms int
		if ms, err = strconv.Atoi(parts[1]); err != nil || ms < 0 || ms > 60000 {
			return 0, 0, fmt.Errorf("bad delay in %q", path)
		}
		delay = time.Duration(ms) * time.Millisecond
		size, err = parseSize(parts[2])
	default:
		err = fmt.Errorf("no object at %q", path)
	}
	return size, delay, err
}

// body is the content of the object at path: its path and size, repeated.
func body(path string, size int) []byte {
	line := fmt.Sprintf("%s %d\n", path, size)
	b := make([]byte, size)
	for i := 0; i < size; i += copy(b[i:], line) {
	}
	return b
}

func etag(path string) string {
	h := fnv.New64a()
	h.Write([]byte(path))
	return fmt.Sprintf(`"%x"`, h.Sum64())
}

// objectHeader sets the header fields every server of the benchmark sends
// with an object, so the caches and the ceiling write the same bytes.
func objectHeader(h http.Header, path string) {
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Cache-Control"] = []string{"public, max-age=3600"}
	h["Last-Modified"] = []string{lastModified}
	h["Etag"] = []string{etag(path)}
}

// cmdOrigin serves the objects, counting requests.
func cmdOrigin(args []string) error {
	fs := flag.NewFlagSet("origin", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18300", "address")
	fs.Parse(args)
	var total atomic.Int64
	var mu sync.Mutex
	perPath := map[string]int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /__count", func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Query().Get("path"); p != "" {
			mu.Lock()
			n := perPath[p]
			mu.Unlock()
			fmt.Fprintln(w, n)
			return
		}
		fmt.Fprintln(w, total.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		mu.Lock()
		perPath[r.URL.Path]++
		mu.Unlock()
		size, delay, err := objectSize(r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		objectHeader(w.Header(), r.URL.Path)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body(r.URL.Path, size))
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// cmdBare is the ceiling: net/http writing the objects from memory, with
// the origin's header fields and nothing else. With -tls it also serves
// HTTPS and HTTP/2 (net/http's defaults) with the pairs of -certs.
func cmdBare(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18301", "plain HTTP address")
	tlsAddr := fs.String("tls", "", "HTTPS address (needs -certs)")
	certs := fs.String("certs", "", "directory written by rig certs")
	fs.Parse(args)
	type object struct {
		header http.Header
		body   []byte
	}
	var objects sync.Map // path -> *object
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := objects.Load(r.URL.Path)
		if !ok {
			size, delay, err := objectSize(r.URL.Path)
			if err != nil || delay > 0 {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
			o := &object{header: http.Header{}, body: body(r.URL.Path, size)}
			objectHeader(o.header, r.URL.Path)
			o.header["Content-Length"] = []string{strconv.Itoa(size)}
			v, _ = objects.LoadOrStore(r.URL.Path, o)
		}
		o := v.(*object)
		for k, vv := range o.header {
			w.Header()[k] = vv
		}
		w.Write(o.body)
	})
	errc := make(chan error, 2)
	go func() {
		srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		errc <- srv.ListenAndServe()
	}()
	if *tlsAddr != "" {
		pairs, err := loadPairs(*certs)
		if err != nil {
			return err
		}
		go func() {
			srv := &http.Server{Addr: *tlsAddr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
				TLSConfig: &tls.Config{Certificates: pairs}}
			errc <- srv.ListenAndServeTLS("", "")
		}()
	}
	return <-errc
}

// cmdFiles writes every object under dir, for nginx's static-file ceiling.
func cmdFiles(args []string) error {
	fs := flag.NewFlagSet("files", flag.ExitOnError)
	dir := fs.String("dir", "", "root directory")
	many := fs.Int("many", 10000, "distinct 1 KiB objects")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	paths := append([]string(nil), hotPaths...)
	for i := range *many {
		paths = append(paths, manyPath(i))
	}
	for _, p := range paths {
		size, _, err := objectSize(p)
		if err != nil {
			return err
		}
		f := filepath.Join(*dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, body(p, size), 0o644); err != nil {
			return err
		}
	}
	return nil
}
