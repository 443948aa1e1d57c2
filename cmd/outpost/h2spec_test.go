package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// h2specTests is how many tests h2spec v2.2.1 has for servers (generic,
// http2, hpack); all must pass.
const h2specTests = 145

// TestH2Spec runs h2spec, the HTTP/2 conformance suite
// (github.com/summerwind/h2spec), against a node's TLS listener. It is
// skipped when h2spec is not installed, unless OUTPOST_REQUIRE_H2SPEC=1
// (.ci/run installs it and sets that).
func TestH2Spec(t *testing.T) {
	bin := findH2Spec()
	if bin == "" {
		if os.Getenv("OUTPOST_REQUIRE_H2SPEC") == "1" {
			t.Fatal("h2spec not found (go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1)")
		}
		t.Skip("h2spec not installed: go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1")
	}
	// Some of h2spec's tests send a request and, right after it, frames
	// for the same stream (WINDOW_UPDATE, DATA), and expect the server to
	// react to those. A server that has already answered may reset the
	// stream with NO_ERROR instead (RFC 9113 §8.1), and a cache hit is
	// answered in microseconds: so every request goes to an origin that
	// takes 20 ms, and h2spec tests the protocol, not the race.
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // h2spec sends POST bodies too
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "h2spec needs a body on /\n")
	})
	addr := startTLSNode(t, o)
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", port, "--tls", "--insecure", "--timeout", "2")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // exits 1 on any failure; the summary line says more
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "no h2spec summary in:\n%s", out.String())
	if m[1] != m[2] || m[1] != strconv.Itoa(h2specTests) {
		t.Errorf("h2spec: %s; want %d of %d passed. Failures:\n%s", m[0], h2specTests, h2specTests, failures(out.String()))
	}
}

// findH2Spec looks in PATH and in Go's bin directory.
func findH2Spec() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	p := filepath.Join(strings.TrimSpace(strings.Split(string(gopath), string(os.PathListSeparator))[0]), "bin", "h2spec")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// failures is the part of h2spec's output after "Failures:".
func failures(out string) string {
	if _, after, ok := strings.Cut(out, "Failures:"); ok {
		return after
	}
	return out
}
