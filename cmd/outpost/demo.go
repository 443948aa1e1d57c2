package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost"
)

// demoBigSize is the size of the generated video-sized object: above the
// slicing threshold (8 MiB), so a Range request shows slicing at work.
const demoBigSize = 24 << 20

// cmdDemo runs an embedded origin serving the demo media and an edge in
// front of it, and prints what to try. It needs no network and no files.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "public listener `address` of the demo edge")
	admin := fs.String("admin", "127.0.0.1:9091", "admin listener `address` (a free port is used if it is taken)")
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if _, err := addrField("--listen", at[string]{V: *listen}); err != nil {
		fmt.Fprintf(stderr, "outpost demo: %v\n", err)
		return 2
	}
	origin, err := newDemoOrigin()
	if err != nil {
		fmt.Fprintf(stderr, "outpost demo: %v\n", err)
		return 1
	}
	defer origin.close()

	s := &settings{
		listen: *listen, admin: *admin, name: "outpost",
		origins: []string{origin.url}, memory: 256 << 20,
		logFormat: "text", drain: 5 * time.Second,
	}
	s.limits, _ = resolveLimits(&limitsConfig{}) // the defaults
	log := newLogger(stderr, "text")
	n, err := newNode(s, log)
	var opErr *net.OpError
	if err != nil && errors.As(err, &opErr) && strings.HasPrefix(err.Error(), "admin:") {
		s.admin = "127.0.0.1:0" // the default admin port is taken: any will do
		n, err = newNode(s, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "outpost demo: %v\n", err)
		return 1
	}
	printDemo(stdout, "http://"+displayAddr(n.publicAddr()), origin.url, "http://"+n.adminAddr())
	if err := n.run(ctx); err != nil {
		fmt.Fprintf(stderr, "outpost demo: %v\n", err)
		return 1
	}
	return 0
}

// displayAddr turns a bound address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func printDemo(w io.Writer, edge, origin, admin string) {
	fmt.Fprintf(w, `Outpost demo: an edge cache in front of an embedded origin.

  edge     %[1]s/          open it in a browser: the page shows each asset's Cache-Status
  origin   %[2]s/          embedded; counts what reaches it at %[2]s/origin/stats
  admin    %[3]s/status    the live status page (its data: /status.json); /metrics, /healthz, /readyz

Try:
  curl -sI %[1]s/css/site.css | grep -i -e cache-status -e age
      first time "outpost; fwd=miss; fwd-status=200; stored"; then "outpost; hit; ttl=..." with an Age
  curl -s -o /dev/null -D - -H 'Accept-Encoding: br' %[1]s/js/app.js | grep -i -e content-encoding -e content-length
      the script compressed on the fly with brotli (gzip and zstd too), once, then served from the cache
  curl -s -o /dev/null -w '%%{http_code} %%{size_download} bytes\n' -H 'Range: bytes=0-99' %[1]s/media/big.bin
      206 with 100 bytes; the origin was asked for one 1 MiB slice of the 24 MiB video, not the file
  curl -sI %[1]s/api/time | grep -i cache-status
      the origin says no-store: "fwd=miss ... detail=\"uncacheable\"", every time
  seq 50 | xargs -P50 -I{} curl -s -o /dev/null %[1]s/slow/2s; curl -s %[2]s/origin/stats
      50 clients at once on a cold object that takes 2 s: one origin fetch, bodies streamed to all
  curl -sI -H 'If-None-Match: "'$(curl -sI %[1]s/img/logo.png | sed -n 's/^[Ee][Tt]ag: "\(.*\)".*/\1/p')'"' %[1]s/img/logo.png
      a conditional request answered 304 from the cache

Stop with Ctrl-C.
`, edge, origin, admin)
}

// demoOrigin is the embedded origin: the media under testdata/demo, a
// generated video-sized object, an uncacheable API and a slow stream.
type demoOrigin struct {
	url    string
	srv    *http.Server
	ln     net.Listener
	big    []byte
	bigTag string

	mu     sync.Mutex
	counts map[string]int
}

func newDemoOrigin() (*demoOrigin, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo origin: %w", err)
	}
	o := &demoOrigin{url: "http://" + ln.Addr().String(), ln: ln, counts: map[string]int{}}
	// The video-sized object is generated, not shipped: deterministic
	// incompressible bytes.
	o.big = make([]byte, demoBigSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(o.big); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			o.big[i+j] = byte(v >> (8 * j))
		}
	}
	o.bigTag = etagOf(o.big)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /origin/stats", o.stats)
	mux.HandleFunc("GET /api/time", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"time": time.Now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("GET /slow/{dur}", o.slow)
	mux.HandleFunc("GET /media/big.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", o.bigTag)
		http.ServeContent(w, r, "", demoModTime, bytes.NewReader(o.big))
	})
	mux.HandleFunc("GET /", o.static)
	o.srv = &http.Server{Handler: o.count(mux), ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(ln)
	return o, nil
}

// demoModTime is the Last-Modified of the demo media.
var demoModTime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func (o *demoOrigin) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o.srv.Shutdown(ctx)
}

func (o *demoOrigin) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/origin/stats" {
			o.mu.Lock()
			o.counts[r.Method+" "+r.URL.Path]++
			o.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (o *demoOrigin) stats(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(map[string]any{"requests": o.counts})
}

// static serves the embedded media with validators and per-type lifetimes.
func (o *demoOrigin) static(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	b, err := fs.ReadFile(outpost.DemoMedia, "testdata/demo"+path.Clean(p))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	maxAge := "3600"
	switch path.Ext(p) {
	case ".html":
		maxAge = "10"
	case ".css", ".js":
		maxAge = "60"
	}
	w.Header().Set("Cache-Control", "public, max-age="+maxAge)
	w.Header().Set("ETag", etagOf(b))
	if path.Ext(p) == ".ttf" {
		w.Header().Set("Content-Type", "font/ttf")
	}
	http.ServeContent(w, r, p, demoModTime, bytes.NewReader(b))
}

// slow answers after trickling 1 MiB over the requested duration (at most
// 10 s), so coalescing and streaming can be watched.
func (o *demoOrigin) slow(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.PathValue("dur"))
	if err != nil || d < 0 || d > 10*time.Second {
		http.Error(w, "want a duration up to 10s, like /slow/2s", http.StatusBadRequest)
		return
	}
	const size, parts = 1 << 20, 20
	w.Header().Set("Cache-Control", "public, max-age=30")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(size))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := range parts {
		select {
		case <-time.After(d / parts):
		case <-r.Context().Done():
			return
		}
		w.Write(o.big[i*size/parts : (i+1)*size/parts])
		rc.Flush()
	}
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}
