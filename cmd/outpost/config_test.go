package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestServeRejectsBadInput: a bad flag or configuration value exits 2
// with a message naming the field (and the line, for YAML), before
// anything listens.
func TestServeRejectsBadInput(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
		giveYAML string
		want     []string // substrings of stderr
	}{
		{"no origin", nil, "", []string{"--origin", "no origin"}},
		{"bad origin URL", []string{"--origin", "ftp://x"}, "", []string{"--origin", `"ftp://x"`}},
		{"bad memory size", []string{"--origin", "http://o", "--memory", "12XB"}, "", []string{"--memory", `"12XB"`}},
		{"bad listen", []string{"--origin", "http://o", "--listen", "nowhere"}, "", []string{"--listen", "nowhere"}},
		{"unknown flag", []string{"--frobnicate"}, "", []string{"frobnicate"}},
		{"bad log format", []string{"--origin", "http://o", "--log-format", "xml"}, "", []string{"--log-format", "xml"}},
		{"unknown YAML field", nil, "listen: \":8080\"\nlisen: x\n", []string{"line 2", "lisen"}},
		{"bad YAML size", nil, "storage:\n  memory: 12XB\nhosts:\n  - origins: [\"http://o\"]\n", []string{"line 2", "storage.memory", "12XB"}},
		{"bad YAML host origin", nil, "hosts:\n  - names: [a.example]\n    origins:\n      - http://ok\n      - gopher://no\n", []string{"line 5", "hosts[0].origins[1]"}},
		{"bad YAML balance", nil, "hosts:\n  - names: [a.example]\n    origins: [\"http://o\"]\n    balance: random\n", []string{"line 4", "hosts[0].balance", "random"}},
		{"bad YAML duration", nil, "hosts:\n  - origins: [\"http://o\"]\n    health: { path: /h, interval: soon }\n", []string{"line 3", "hosts[0].health.interval", "soon"}},
		{"health timeout over interval", nil, "hosts:\n  - origins: [\"http://o\"]\n    health:\n      path: /h\n      interval: 1s\n      timeout: 2s\n", []string{"line 6", "hosts[0].health.timeout", "must not exceed"}},
		{"health path", nil, "hosts:\n  - origins: [\"http://o\"]\n    health: { path: healthz }\n", []string{"line 3", "hosts[0].health.path", "healthz"}},
		{"health status", nil, "hosts:\n  - origins: [\"http://o\"]\n    health:\n      path: /h\n      status: 42\n", []string{"line 5", "hosts[0].health.status", "42"}},
		{"bad name", []string{"--origin", "http://o"}, "name: \"a b\"\n", []string{"line 1", "name", "a b"}},
		{"small slice size", []string{"--origin", "http://o"}, "storage:\n  slice_size: 4KiB\n", []string{"line 2", "storage.slice_size", "64KiB minimum"}},
		{"bad YAML type", nil, "name: [a, b]\n", []string{"line 1"}},
		{"bad YAML syntax", nil, "hosts: [\n", []string{"config"}},
		{"unknown field in a host", nil, "hosts:\n  - names: [a.example]\n    origins: [\"http://o\"]\n    helth: {}\n", []string{"line 4", "helth"}},
		{"bad host name", nil, "hosts:\n  - names: [\"a/b\"]\n    origins: [\"http://o\"]\n", []string{"line 2", "hosts[0].names[0]"}},
		{"bad compression type", []string{"--origin", "http://o"}, "compression:\n  types: [text/css, nonsense]\n", []string{"line 2", "compression.types", "nonsense"}},
		{"bad compression coding", []string{"--origin", "http://o"}, "compression:\n  codings:\n    - zstd\n    - deflate\n", []string{"line 4", "compression.codings", "deflate"}},
		{"bad compression switch", []string{"--origin", "http://o"}, "compression: maybe\n", []string{"line 1", "compression", "maybe"}},
		{"bad compression size", []string{"--origin", "http://o"}, "compression: { min_size: big }\n", []string{"line 1", "compression.min_size", "big"}},
		{"bad memory arena", []string{"--origin", "http://o"}, "storage:\n  memory_arena: swap\n", []string{"line 2", "storage.memory_arena", "swap"}},
		{"bad disk min uses", []string{"--origin", "http://o"}, "storage:\n  disk:\n    min_uses: 3\n", []string{"line 3", "storage.disk.min_uses", "3"}},
		{"public admin without token", []string{"--origin", "http://o", "--admin", "0.0.0.0:9091"}, "", []string{"admin", "token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			args := append([]string{"serve"}, tt.giveArgs...)
			if tt.giveYAML != "" {
				args = append(args, "--config", writeFile(t, "outpost.yaml", tt.giveYAML))
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			assert.Equal(t, 2, code, "exit status; stderr: %s", stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}
		})
	}
}

// TestFlagsOverrideFile: a flag the user sets wins over the file; the
// file wins over the flag's default.
func TestFlagsOverrideFile(t *testing.T) {
	cfg := writeFile(t, "outpost.yaml", "listen: \"127.0.0.1:7000\"\nname: from-file\nstorage:\n  memory: 64MiB\nhosts:\n  - names: [static.example.com]\n    origins: [\"http://origin.internal\"]\n    cache_key: { ignore_query: [\"utm_*\"] }\n")
	f := newServeFlags("outpost serve", &bytes.Buffer{})
	require.NoError(t, f.fs.Parse([]string{"--config", cfg, "--name", "from-flag"}))
	s, err := f.resolve()
	require.NoError(t, err)
	assert.Equal(t, "from-flag", s.name, "a flag the user set wins")
	assert.Equal(t, "127.0.0.1:7000", s.listen, "the file wins over a default")
	assert.Equal(t, int64(64<<20), s.memory)
	require.Len(t, s.hosts, 1)
	assert.Equal(t, []string{"static.example.com"}, s.hosts[0].names)
	assert.Equal(t, []string{"utm_*"}, s.hosts[0].ignoreQuery)
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want int64
	}{
		{"256MiB", 256 << 20}, {"10GiB", 10 << 30}, {"1.5KiB", 1536}, {"512MB", 512e6},
		{"2GB", 2e9}, {"100B", 100}, {"4096", 4096}, {"1kib", 1024}, {" 3 MiB ", 3 << 20},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.give)
		if assert.NoError(t, err, "parseSize(%q)", tt.give) {
			assert.Equal(t, tt.want, got, "parseSize(%q)", tt.give)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1e9", "12XB", "0x10", "NaN"} {
		_, err := parseSize(bad)
		assert.Error(t, err, "parseSize(%q)", bad)
	}
}

func TestVersionAndUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"version"}, &stdout, &stderr))
	assert.True(t, strings.HasPrefix(stdout.String(), "outpost "), stdout.String())
	assert.Equal(t, 2, run(context.Background(), nil, &stdout, &stderr))
	assert.Equal(t, 2, run(context.Background(), []string{"frob"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `unknown command "frob"`)
}

// TestServeReportsBusyPorts: a listener that cannot bind, or a disk tier
// that cannot open, makes serve exit 1 with the reason, after releasing
// what it had built (no panic, no listener left behind).
func TestServeReportsBusyPorts(t *testing.T) {
	t.Setenv(tokenEnv, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	notDir := writeFile(t, "file", "x")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"public port in use", []string{"--listen", busy.Addr().String(), "--admin", "127.0.0.1:0"}, "listen:"},
		{"admin port in use", []string{"--listen", "127.0.0.1:0", "--admin", busy.Addr().String()}, "admin:"},
		{"cache dir is a file", []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--cache-dir", notDir}, "disk tier"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--origin", "http://o"}, tt.args...), io.Discard, &stderr)
			assert.Equal(t, 1, code, stderr.String())
			assert.Contains(t, stderr.String(), tt.want)
		})
	}
}
