package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/origin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log destination tests read while the node writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// postReload asks the node to reload and decodes its answer.
func postReload(t *testing.T, admin string, hdr ...string) (int, reloadResult) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, admin+"/reload", nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var res reloadResult
	if resp.StatusCode != http.StatusUnauthorized {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	}
	return resp.StatusCode, res
}

// TestReloadAddsHostChangesOriginDuringDownload: a reload adds a host and
// moves another to a new origin while a long download from the old origin
// goes on; the download arrives whole, a keep-alive connection opened
// before the reload serves requests after it, the cache is kept, and the
// old pool is closed once the download is done.
func TestReloadAddsHostChangesOriginDuringDownload(t *testing.T) {
	t.Setenv(tokenEnv, "")
	const bigSize = 4 << 20
	release := make(chan struct{})
	started := make(chan struct{})
	var startOnce sync.Once
	oldOrigin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path != "/big.mp4" {
			io.WriteString(w, "old "+r.URL.Path)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(bigSize))
		w.Write(make([]byte, bigSize/2))
		w.(http.Flusher).Flush()
		startOnce.Do(func() { close(started) })
		<-release
		w.Write(make([]byte, bigSize/2))
	})
	newOrigin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "new "+r.URL.Path)
	})
	bOrigin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "b "+r.URL.Path)
	})
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("hosts:\n  - names: [a.test]\n    origins: [%q]\n", oldOrigin.URL))
	tn := startNodeWith(t, func(n *node) { n.ops.retireAfter = time.Millisecond }, "--config", cfg)

	resp, body := fetch(t, tn.url+"/site.css", "Host", "a.test")
	require.Equal(t, "old /site.css", body)
	resp, _ = fetch(t, tn.url+"/x", "Host", "b.test")
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "b.test is not served before the reload")

	download := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, tn.url+"/big.mp4", nil)
		req.Host = "a.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			download <- err
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != bigSize {
			err = fmt.Errorf("downloaded %d bytes of %d", n, bigSize)
		}
		download <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the download never started")
	}

	// A keep-alive connection, opened before the reload.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	var reused []bool
	getOn := func(host, path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, tn.url+path, nil)
		req.Host = host
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
		}))
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	getOn("a.test", "/site.css")
	oldSet := tn.n.ops.hosts.Load()
	oldPool := oldSet.pools[0].pool

	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(
		"hosts:\n  - names: [a.test]\n    origins: [%q]\n  - names: [b.test]\n    origins: [%q]\n", newOrigin.URL, bOrigin.URL)), 0o600))
	code, res := postReload(t, tn.admin)
	require.Equal(t, http.StatusOK, code, "reload answer: %+v", res)
	assert.True(t, res.OK)
	assert.Equal(t, []string{"hosts"}, res.Changed)
	assert.Empty(t, res.Restart)

	resp, body = getOn("b.test", "/x")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "b /x", body, "the added host is served")
	resp, body = getOn("a.test", "/site.css")
	assert.Equal(t, "old /site.css", body, "stored before the reload")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the cache survived the reload")
	_, body = getOn("a.test", "/fresh.css")
	assert.Equal(t, "new /fresh.css", body, "misses go to the new origin")
	assert.Equal(t, 0, oldOrigin.count("/fresh.css"))
	assert.Equal(t, []bool{false, true, true, true}, reused, "one connection before and after the reload")

	close(release)
	select {
	case err := <-download:
		require.NoError(t, err, "the download in flight during the reload")
	case <-time.After(20 * time.Second):
		t.Fatal("the download never finished")
	}
	// Once the download is done the old pool is closed.
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodGet, oldOrigin.URL+"/probe", nil)
		_, err := oldPool.RoundTrip(req)
		return err != nil && strings.Contains(err.Error(), origin.ErrClosed.Error())
	}, 10*time.Second, 10*time.Millisecond, "the replaced pool was never closed")
}

// TestReloadRefusesBadConfig: an invalid configuration is refused with its
// field and line, logged, and the running configuration stays.
func TestReloadRefusesBadConfig(t *testing.T) {
	t.Setenv(tokenEnv, "")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "ok")
	})
	good := fmt.Sprintf("hosts:\n  - names: [a.test]\n    origins: [%q]\n", o.URL)
	cfg := writeFile(t, "outpost.yaml", good)
	logs := &syncBuffer{}
	tn := startNodeWith(t, func(n *node) { n.log = slog.New(slog.NewTextHandler(logs, nil)) }, "--config", cfg)

	tests := []struct {
		name      string
		give      string
		wantError []string
	}{
		{"bad origin URL", "hosts:\n  - names: [a.test]\n    origins: [\"ftp://nowhere\"]\n", []string{"line 3", "hosts[0].origins[0]", "ftp://nowhere"}},
		{"unknown field", "hosts:\n  - names: [a.test]\n    orgins: [\"http://x\"]\n", []string{"line 3", "orgins"}},
		{"bad duration", good + "    health: {path: /h, interval: soon}\n", []string{"line 4", "hosts[0].health.interval", "soon"}},
		{"no origin", "hosts: []\n", []string{"no origin"}},
		{"not YAML", "hosts: [\n", []string{"config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(cfg, []byte(tt.give), 0o600))
			code, res := postReload(t, tn.admin)
			assert.Equal(t, http.StatusBadRequest, code)
			assert.False(t, res.OK)
			for _, w := range tt.wantError {
				assert.Contains(t, res.Error, w)
			}
			assert.Contains(t, logs.String(), "reload refused; the running configuration stays")
			resp, body := fetch(t, tn.url+"/page", "Host", "a.test")
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the running configuration still serves")
			assert.Equal(t, "ok", body)
		})
	}
	// /status.json shows the last refusal.
	d := getStatus(t, tn.admin)
	require.NotNil(t, d.Reload)
	assert.False(t, d.Reload.OK)
	assert.Contains(t, d.Reload.Error, "config file")

	require.NoError(t, os.WriteFile(cfg, []byte(good+"storage:\n  memory: 64MiB\n"), 0o600))
	code, res := postReload(t, tn.admin)
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, res.Changed, "the hosts are the same: nothing is rebuilt")
	assert.Equal(t, []string{"storage.memory"}, res.Restart, "a new memory budget needs a restart")
}

// TestReloadChangesToken: the admin token is read again.
func TestReloadChangesToken(t *testing.T) {
	t.Setenv(tokenEnv, "")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tokenFile := writeFile(t, "token", "first\n")
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("admin: {token_file: %q}\nhosts:\n  - origins: [%q]\n", tokenFile, o.URL))
	tn := startNode(t, "--config", cfg)

	code, _ := postReload(t, tn.admin)
	assert.Equal(t, http.StatusUnauthorized, code, "reload needs the token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("second\n"), 0o600))
	code, res := postReload(t, tn.admin, "Authorization", "Bearer first")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, []string{"token"}, res.Changed)
	code, _ = postReload(t, tn.admin, "Authorization", "Bearer first")
	assert.Equal(t, http.StatusUnauthorized, code, "the old token no longer works")
	code, res = postReload(t, tn.admin, "Authorization", "Bearer second")
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, res.Changed)
}

// TestBinaryReloadsOnSIGHUP: the serve command reloads on SIGHUP, and a
// configuration it refuses leaves it serving.
func TestBinaryReloadsOnSIGHUP(t *testing.T) {
	a := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") })
	b := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf("hosts:\n  - origins: [%q]\n", a.URL))
	p := startProc(t, "--config", cfg)
	_, body := fetch(t, p.url+"/x")
	require.Equal(t, "a", body)

	require.NoError(t, os.WriteFile(cfg, []byte("hosts:\n  - origins: [\"not a url\"]\n"), 0o600))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		r := getStatus(t, p.admin).Reload
		return r != nil && !r.OK && strings.Contains(r.Error, "line 2")
	}, 10*time.Second, 10*time.Millisecond, "the bad reload was not refused")
	_, body = fetch(t, p.url+"/y")
	assert.Equal(t, "a", body, "still serving the old configuration")

	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("hosts:\n  - origins: [%q]\n", b.URL)), 0o600))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		r := getStatus(t, p.admin).Reload
		return r != nil && r.OK
	}, 10*time.Second, 10*time.Millisecond, "no reload after SIGHUP")
	_, body = fetch(t, p.url+"/z")
	assert.Equal(t, "b", body, "the new origin")
}

// getStatus fetches and decodes /status.json.
func getStatus(t *testing.T, admin string) *statusDoc {
	t.Helper()
	resp, err := http.Get(admin + "/status.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var d statusDoc
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
	return &d
}
