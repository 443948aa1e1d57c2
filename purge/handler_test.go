package purge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newAdmin serves ix's purge handler at /purge, as cmd mounts it.
func newAdmin(t *testing.T, ix *Index, maxBody int64) *httptest.Server {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Purger: ix, MaxBodySize: maxBody})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/purge", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out), "answer %q", data)
	return resp.StatusCode, resp.Header, out
}

func TestHandlerPurges(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{Dir: t.TempDir()})
	srv := newAdmin(t, ix, 0)
	status, h, out := post(t, srv.URL+"/purge", `{"urls": ["http://a.test/x", "http://A.test/x"], "tags": ["t"], "soft": true}`)
	require.Equal(t, http.StatusOK, status, "answer %v", out)
	assert.Equal(t, "application/json", h.Get("Content-Type"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, float64(2), out["bans"], "repeated URL recorded once")
	assert.Equal(t, float64(0), out["purged"])
	assert.Equal(t, ix.Recent(1)[0].ID, out["id"])

	_, soft, banned := ix.Check(&storage.Meta{URL: "http://a.test/x", ResponseTime: clk.Now().Add(-time.Minute)})
	assert.True(t, banned && soft, "the purge applies when the answer arrives")
}

func TestHandlerRefusesBadRequests(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{"empty body", ``, "empty body: send a JSON object"},
		{"malformed", `{"urls": [`, "malformed JSON: unexpected end of body"},
		{"syntax", `{"urls": ["a" "b"]}`, `malformed JSON at byte 15: invalid character '"' after array element`},
		{"unknown field", `{"url": ["http://a.test/"]}`, `malformed request: json: unknown field "url"`},
		{"wrong type", `{"urls": "http://a.test/"}`, `field "urls": want []string, got string`},
		{"array", `[]`, "body must be a JSON object, not array"},
		{"trailing data", `{"all": true} {"all": true}`, "malformed JSON: data after the object"},
		{"null", `null`, "nothing to purge"},
		{"empty object", `{}`, "nothing to purge"},
		{"only soft", `{"soft": true}`, "nothing to purge"},
		{"relative url", `{"urls": ["/x"]}`, `urls[0] "/x": not an absolute http(s) URL`},
		{"one bad url among good", `{"urls": ["http://a.test/", "gopher://a.test/"], "all": true}`, `urls[1] "gopher://a.test/": not an absolute http(s) URL`},
		{"bad prefix", `{"prefixes": ["a.test/img/"]}`, `prefixes[0] "a.test/img/": not an absolute http(s) URL`},
		{"empty tag", `{"tags": [""]}`, `tags[0] "": empty tag`},
		{"empty host", `{"hosts": [""]}`, `hosts[0] "": empty host`},
		{"too large", `{"tags": ["` + strings.Repeat("t", 200) + `"]}`, "body larger than 100 bytes"},
		{"too large after the object", `{"all": true}` + strings.Repeat(" ", 100), "body larger than 100 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newIndex(t, newClock(), Config{})
			srv := newAdmin(t, ix, 100)
			status, _, out := post(t, srv.URL+"/purge", tt.give)
			assert.Equal(t, http.StatusBadRequest, status, "POST %s", tt.give)
			assert.Len(t, out, 1, "answer %v", out)
			assert.Contains(t, out["error"], tt.wantErr, "POST %s", tt.give)
			assert.Zero(t, ix.Len(), "bans recorded")
			assert.Empty(t, ix.Recent(1), "purges recorded")
		})
	}
}

func TestHandlerMethodNotAllowed(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	srv := newAdmin(t, ix, 0)
	resp, err := http.Get(srv.URL + "/purge")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
}

func TestHandlerOnClosedIndex(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	srv := newAdmin(t, ix, 0)
	require.NoError(t, ix.Close())
	status, _, out := post(t, srv.URL+"/purge", `{"all": true}`)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "the node is shutting down", out["error"])
}

func TestNewHandlerNamesTheBadField(t *testing.T) {
	_, err := NewHandler(HandlerConfig{})
	assert.ErrorContains(t, err, "HandlerConfig.Purger")
	_, err = NewHandler(HandlerConfig{Purger: newIndex(t, nil, Config{}), MaxBodySize: -1})
	assert.ErrorContains(t, err, "HandlerConfig.MaxBodySize")
}

// FuzzRequest checks the admin API's request validation: any body is
// either refused with a reason or yields well-formed, canonical bans, and
// canonicalization is idempotent (a purge of the bans it produced produces
// them again).
func FuzzRequest(f *testing.F) {
	for _, tt := range invalidRequests {
		b, _ := json.Marshal(tt.give)
		f.Add(string(b))
	}
	f.Add(`{"urls": ["HTTP://A.test/x#f"], "prefixes": ["http://a.test"], "tags": ["t"], "hosts": ["::1"], "all": true}`)
	f.Add(`{"prefixes": ["https://a.test/img/a"], "soft": true}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		bans, err := req.bans(canonicalize)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("%q: error %T %v is not a *ValidationError", body, err, err)
			}
			return
		}
		var again Request
		for _, b := range bans {
			if err := b.check(); err != nil {
				t.Fatalf("%q: accepted ban %+v is malformed: %v", body, b, err)
			}
			switch b.Kind {
			case KindURL:
				again.URLs = append(again.URLs, b.Value)
			case KindPrefix:
				again.Prefixes = append(again.Prefixes, b.Value)
			case KindTag:
				again.Tags = append(again.Tags, b.Value)
			case KindHost:
				again.Hosts = append(again.Hosts, b.Value)
			case KindAll:
				again.All = true
			}
		}
		bans2, err := again.bans(canonicalize)
		if err != nil {
			t.Fatalf("%q: its own bans %+v refused: %v", body, bans, err)
		}
		assert.Equal(t, bans, bans2, "bans of %q purged again", body)
	})
}
