package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The packaging under deploy/ and the Dockerfile, checked against the code.

const deployDir = "../../deploy"

// dashboardExprs returns every PromQL expression and variable query of a
// Grafana dashboard.
func dashboardExprs(t *testing.T, v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "definition" || k == "query") {
				out = append(out, s)
			}
			out = append(out, dashboardExprs(t, val)...)
		}
	case []any:
		for _, val := range x {
			out = append(out, dashboardExprs(t, val)...)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(?:outpost|process|go)_[a-z0-9_]+\b`)

// TestDashboardMetricsExist: every metric the Grafana dashboard queries is
// one a node exports, gathered from a node with a disk tier and a purge bus
// after a miss, a hit, a compressed answer and a purge.
func TestDashboardMetricsExist(t *testing.T) {
	t.Setenv(tokenEnv, "")
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana", "outpost.json"))
	require.NoError(t, err)
	var dash map[string]any
	require.NoError(t, json.Unmarshal(raw, &dash), "the dashboard is valid JSON")
	require.Equal(t, "outpost-overview", dash["uid"])
	exprs := dashboardExprs(t, dash)
	require.NotEmpty(t, exprs)
	queried := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			queried[name] = true
		}
	}
	require.Greater(t, len(queried), 20, "the dashboard queries the metrics")

	busConfig, _ := startNATS(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, strings.Repeat("let x = 1;\n", 200))
	})
	tn := startNode(t, "--origin", o.URL, "--cache-dir", t.TempDir(), "--name", "dash-1", "--config", busConfig)
	fetch(t, tn.url+"/app.js")
	fetch(t, tn.url+"/app.js", "Accept-Encoding", "gzip")
	code, _ := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/app.js")
	require.Equal(t, 0, code)
	exported := map[string]bool{}
	for name := range tn.n.families() {
		exported[name] = true
	}
	var missing []string
	for name := range queried {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "queried by deploy/grafana/outpost.json but not exported")

	// Every panel has a data source and targets with a refId.
	for _, p := range dash["panels"].([]any) {
		panel := p.(map[string]any)
		if panel["type"] == "row" {
			continue
		}
		targets, _ := panel["targets"].([]any)
		assert.NotEmpty(t, targets, "panel %q", panel["title"])
		for _, tg := range targets {
			assert.NotEmpty(t, tg.(map[string]any)["refId"], "panel %q", panel["title"])
		}
	}
}

// exampleEnv rewrites an example configuration's paths into a temporary
// directory holding what they name: the token, the certificates, the
// cache and log directories.
func exampleEnv(t *testing.T, yaml string) string {
	dir := t.TempDir()
	for _, sub := range []string{"cache", "log", "tls"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, sub), 0o700))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("example-token\n"), 0o600))
	for _, m := range regexp.MustCompile(`/etc/outpost/tls/([a-z0-9.-]+)\.crt`).FindAllStringSubmatch(yaml, -1) {
		certFor(t, filepath.Join(dir, "tls"), m[1], 1, m[1])
		os.Rename(filepath.Join(dir, "tls", m[1]+".pem"), filepath.Join(dir, "tls", m[1]+".crt"))
	}
	r := strings.NewReplacer(
		"/etc/outpost/tls/", filepath.Join(dir, "tls")+"/",
		"/etc/outpost/token", filepath.Join(dir, "token"),
		"/var/cache/outpost", filepath.Join(dir, "cache"),
		"/var/log/outpost", filepath.Join(dir, "log"),
	)
	return r.Replace(yaml)
}

// TestExampleConfigs: each example configuration under deploy/examples is
// one `outpost check` accepts, and the paths it uses are the ones the
// systemd unit and logrotate file provide.
func TestExampleConfigs(t *testing.T) {
	t.Setenv(tokenEnv, "")
	files, err := filepath.Glob(filepath.Join(deployDir, "examples", "*.yaml"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	assert.Equal(t, []string{"edge.yaml", "fleet.yaml", "shield.yaml", "single.yaml"}, names, "one per role")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.Contains(t, string(raw), "/var/cache/outpost", "the unit's CacheDirectory")
			assert.Contains(t, string(raw), "/var/log/outpost/access.log", "the unit's LogsDirectory, rotated by deploy/logrotate")
			cfg := writeFile(t, "outpost.yaml", exampleEnv(t, string(raw)))
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"check", "--config", cfg}, &stdout, &stderr)
			assert.Equal(t, 0, code, "outpost check: %s%s", stdout.String(), stderr.String())
		})
	}
}

// TestSystemdUnit: the unit runs the binary the README installs with the
// configuration the examples are for, reloads with SIGHUP after a check,
// and keeps its hardening.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "systemd", "outpost.service"))
	require.NoError(t, err)
	settings := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	want := map[string]string{
		"ExecStart":              "/usr/local/bin/outpost serve --config /etc/outpost/outpost.yaml",
		"ExecStartPre":           "/usr/local/bin/outpost check --config /etc/outpost/outpost.yaml",
		"KillSignal":             "SIGTERM",
		"User":                   "outpost",
		"CacheDirectory":         "outpost",
		"LogsDirectory":          "outpost",
		"NoNewPrivileges":        "yes",
		"ProtectSystem":          "strict",
		"ProtectHome":            "yes",
		"PrivateTmp":             "yes",
		"CapabilityBoundingSet":  "CAP_NET_BIND_SERVICE",
		"SystemCallFilter":       "@system-service",
		"MemoryDenyWriteExecute": "yes",
	}
	for k, v := range want {
		assert.Equal(t, []string{v}, settings[k], k)
	}
	assert.Equal(t, []string{"/usr/local/bin/outpost check --config /etc/outpost/outpost.yaml", "/bin/kill -HUP $MAINPID"}, settings["ExecReload"])
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(deployDir, "systemd", "outpost.service")).CombinedOutput()
		// verify also complains that /usr/local/bin/outpost is not installed here.
		if err != nil && !strings.Contains(string(out), "/usr/local/bin/outpost") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	lr, err := os.ReadFile(filepath.Join(deployDir, "logrotate", "outpost"))
	require.NoError(t, err)
	assert.Contains(t, string(lr), "/var/log/outpost/access.log")
	assert.Contains(t, string(lr), "--signal=SIGUSR1", "the signal that reopens the access log")
}

// TestDockerfileBuild: the Dockerfile's build step, run here as written
// with its VERSION build argument, makes a binary that reports that
// version; the image's HEALTHCHECK is a command the binary has, and it
// answers for a running node. (No Docker engine runs here: the image
// itself is built by CI where one does.)
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Setenv(tokenEnv, "")
	raw, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	m := regexp.MustCompile(`RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w (-X main\.version=\$\{VERSION\})" -o \S+ (\./cmd/outpost)`).FindStringSubmatch(df)
	require.NotNil(t, m, "the go build step, with the version in -ldflags")
	assert.Regexp(t, `(?m)^ARG VERSION=dev$`, df)
	// The same -X; -trimpath and -s -w are left out so that the build
	// reuses the packages the tests compiled (with them, every dependency
	// is compiled again: minutes on a cold cache).
	bin := filepath.Join(t.TempDir(), "outpost")
	ldflags := strings.ReplaceAll(m[1], "${VERSION}", "v9.8.7-docker")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-ldflags", ldflags, "-o", bin, m[2])
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(out), "outpost v9.8.7-docker")

	hc := regexp.MustCompile(`HEALTHCHECK .*CMD \["/usr/local/bin/outpost", "health", "--ready"\]`).FindString(df)
	require.NotEmpty(t, hc, "a HEALTHCHECK running outpost health --ready")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	tn := startNode(t, "--origin", o.URL)
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run(t.Context(), []string{"health", "--ready", "--admin", tn.admin}, &stdout, &stderr), stderr.String())
	assert.Equal(t, "ready\n", stdout.String())
	require.NoError(t, tn.stop(t))
	stderr.Reset()
	assert.Equal(t, 1, run(t.Context(), []string{"health", "--admin", tn.admin}, &stdout, &stderr), "a stopped node is not healthy")
	assert.True(t, slices.ContainsFunc([]string{"refused", "connect"}, func(s string) bool { return strings.Contains(stderr.String(), s) }), stderr.String())

}
