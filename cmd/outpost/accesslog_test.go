package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readLines returns the lines of a file, waiting up to a few seconds for at
// least want of them (a line is written once its response is done).
func readLines(t *testing.T, path string, want int) []string {
	t.Helper()
	var lines []string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			lines = nil
		}
		return len(lines) >= want
	}, 10*time.Second, 5*time.Millisecond, "%s never had %d lines", path, want)
	return lines
}

// combinedLine is the combined format with Outpost's three fields.
var combinedLine = regexp.MustCompile(`^(\S+) - - \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)" "([^"]*)" (\d+\.\d{3}|-) (\d+|-)$`)

// TestAccessLogCombined: the combined format with the cache status,
// upstream time and upstream bytes appended, a miss with them and a hit
// without.
func TestAccessLogCombined(t *testing.T) {
	t.Setenv(tokenEnv, "")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, strings.Repeat("x", 1000))
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("log: {access_file: %q, access_format: combined}\nhosts:\n  - origins: [%q]\n", logPath, o.URL))
	tn := startNode(t, "--config", cfg)
	fetch(t, tn.url+"/a.css", "Referer", "http://site.test/", "User-Agent", `ua "quoted"`)
	fetch(t, tn.url+"/a.css")
	lines := readLines(t, logPath, 2)
	require.Len(t, lines, 2)

	m := combinedLine.FindStringSubmatch(lines[0])
	require.NotNil(t, m, "not the combined format: %q", lines[0])
	assert.Equal(t, "127.0.0.1", m[1])
	_, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[2])
	assert.NoError(t, err)
	assert.Equal(t, "GET /a.css HTTP/1.1", m[3])
	assert.Equal(t, "200", m[4])
	assert.Equal(t, "1000", m[5])
	assert.Equal(t, "http://site.test/", m[6])
	assert.Equal(t, `ua \x22quoted\x22`, m[7], "quotes escaped: a client cannot forge a field")
	assert.Contains(t, m[8], "fwd=miss")
	assert.NotEqual(t, "-", m[9], "a miss went upstream")
	assert.Equal(t, "1000", m[10], "upstream body bytes")

	m = combinedLine.FindStringSubmatch(lines[1])
	require.NotNil(t, m, "not the combined format: %q", lines[1])
	assert.Contains(t, m[8], "hit")
	assert.Equal(t, "-", m[9], "a hit went nowhere upstream")
	assert.Equal(t, "-", m[10])
}

// TestAccessLogJSON: one JSON object per request, with the upstream fields
// on a miss.
func TestAccessLogJSON(t *testing.T) {
	t.Setenv(tokenEnv, "")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "body")
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("log: {access_file: %q, access_format: json}\nhosts:\n  - origins: [%q]\n", logPath, o.URL))
	tn := startNode(t, "--config", cfg)
	fetch(t, tn.url+"/j.css?q=1")
	lines := readLines(t, logPath, 1)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec), "line %q", lines[0])
	assert.Equal(t, "request", rec["msg"])
	assert.Equal(t, "/j.css?q=1", rec["uri"])
	assert.Equal(t, float64(200), rec["status"])
	assert.Equal(t, float64(4), rec["bytes"])
	assert.Equal(t, float64(4), rec["upstream_bytes"])
	assert.Contains(t, rec, "upstream_time")
	assert.Contains(t, rec["cache"], "fwd=miss")
}

// TestAccessLogReopen: reopen writes to a new file at the path after the
// old one was moved away, as logrotate does.
func TestAccessLogReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	lf, err := openLogFile(path)
	require.NoError(t, err)
	defer lf.close()
	io.WriteString(lf, "one\n")
	require.NoError(t, os.Rename(path, path+".1"))
	io.WriteString(lf, "two\n") // still the old file, as with nginx until it reopens
	require.NoError(t, lf.reopen())
	io.WriteString(lf, "three\n")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	assert.Equal(t, "one\ntwo\n", string(old))
	assert.Equal(t, "three\n", string(cur))

	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	require.NoError(t, os.Rename(path, path+".2"))
	if err := lf.reopen(); err != nil { // root may create files anyway
		io.WriteString(lf, "four\n")
		moved, _ := os.ReadFile(path + ".2")
		assert.Equal(t, "three\nfour\n", string(moved), "a failed reopen keeps the old file")
	}
}

// TestBinaryReopensAccessLogOnSIGUSR1: after logrotate moves the file and
// signals, new lines go to a new file at the configured path.
func TestBinaryReopensAccessLogOnSIGUSR1(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("log: {access_file: %q}\nhosts:\n  - origins: [%q]\n", logPath, o.URL))
	p := startProc(t, "--config", cfg)
	fetch(t, p.url+"/before")
	readLines(t, logPath, 1)
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGUSR1))
	require.Eventually(t, func() bool { _, err := os.Stat(logPath); return err == nil }, 10*time.Second, 5*time.Millisecond, "no new file after SIGUSR1")
	fetch(t, p.url+"/after")
	lines := readLines(t, logPath, 1)
	assert.Contains(t, lines[0], "uri=/after")
	old, err := os.ReadFile(logPath + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(old), "uri=/before")
	assert.NotContains(t, string(old), "uri=/after")
}

// TestAccessLogConfig: the access log's settings are validated.
func TestAccessLogConfig(t *testing.T) {
	tests := []struct {
		name, giveYAML string
		want           []string
	}{
		{"bad format", "log: {access: true, access_format: apache}\n", []string{"line 1", "log.access_format", "apache"}},
		{"no directory", "log:\n  access_file: /nonexistent/dir/access.log\n", []string{"line 2", "log.access_file"}},
		{"http3 without TLS", "http3: true\n", []string{"line 1", "http3", "needs TLS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newServeFlags("outpost serve", io.Discard)
			require.NoError(t, f.fs.Parse([]string{"--origin", "http://o.test", "--config", writeFile(t, "o.yaml", tt.giveYAML)}))
			_, err := f.resolve()
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestAppendQuoted: control bytes, quotes and non-ASCII are escaped; an
// empty value is "-".
func TestAppendQuoted(t *testing.T) {
	tests := []struct{ give, want string }{
		{"", `"-"`},
		{"plain /a?b=c", `"plain /a?b=c"`},
		{"a\"b\\c", `"a\x22b\x5Cc"`},
		{"line\nbreak\r", `"line\x0Abreak\x0D"`},
		{"é", `"\xC3\xA9"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendQuoted(nil, tt.give)), "appendQuoted(%q)", tt.give)
	}
}

// BenchmarkObserve is the status counters' cost on a 1 KiB memory hit: the
// edge handler bare and wrapped as the public listener wraps it.
func BenchmarkObserve(b *testing.B) {
	h, req := accessBench(b, "none", 1<<10)
	n := &node{s: &settings{}}
	wrapped, err := n.observe(h)
	require.NoError(b, err)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", h}, {"observed", wrapped}} {
		b.Run(bc.name, func(b *testing.B) {
			w := &benchWriter{h: make(http.Header, 16)}
			b.ReportAllocs()
			b.SetBytes(1 << 10)
			for b.Loop() {
				clear(w.h)
				w.n = 0
				bc.h.ServeHTTP(w, req)
			}
			if w.status != http.StatusOK || w.n != 1<<10 {
				b.Fatalf("hit: status %d, %d bytes", w.status, w.n)
			}
		})
	}
}
