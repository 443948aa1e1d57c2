package origin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seen is what an origin saw of a request.
type seen struct {
	host, requestURI string
	header           http.Header
}

// recorder is an origin that records the requests it sees.
func recorder(t *testing.T) (*httptest.Server, chan seen) {
	t.Helper()
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{host: r.Host, requestURI: r.RequestURI, header: r.Header}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestRequestRewrite(t *testing.T) {
	srv, got := recorder(t)
	originHost := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name           string
		giveConfig     Config // Origins: srv, with giveServerPath
		giveServerPath string
		giveURL        string
		giveHost       string
		wantHost       string
		wantRequestURI string
	}{
		{name: "client host", giveURL: "http://static.example.com/img/a.png?x=1", giveHost: "static.example.com",
			wantHost: "static.example.com", wantRequestURI: "/img/a.png?x=1"},
		{name: "host from URL when Host is empty", giveURL: "http://static.example.com:8080/a.png",
			wantHost: "static.example.com:8080", wantRequestURI: "/a.png"},
		{name: "origin host", giveConfig: Config{HostHeader: HostOrigin}, giveURL: "http://static.example.com/a.png", giveHost: "static.example.com",
			wantHost: originHost, wantRequestURI: "/a.png"},
		{name: "path prefix", giveConfig: Config{PathPrefix: "/static/"}, giveURL: "http://static.example.com/img/a%2Fb%20c.png?x=%26",
			wantHost: "static.example.com", wantRequestURI: "/static/img/a%2Fb%20c.png?x=%26"},
		{name: "server path then path prefix", giveConfig: Config{PathPrefix: "/static"}, giveServerPath: "/base",
			giveURL: "http://static.example.com/a.png", wantHost: "static.example.com", wantRequestURI: "/base/static/a.png"},
		{name: "path prefix and empty path", giveConfig: Config{PathPrefix: "/static"}, giveURL: "http://static.example.com",
			wantHost: "static.example.com", wantRequestURI: "/static/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.giveConfig
			cfg.Origins = []Server{{URL: srv.URL + tt.giveServerPath}}
			p := newTestPool(t, cfg)
			req, err := http.NewRequest(http.MethodGet, tt.giveURL, nil)
			require.NoError(t, err)
			req.Host = tt.giveHost
			wantURL := req.URL.String()

			_, _, err = send(p, req)

			require.NoError(t, err)
			s := <-got
			assert.Equal(t, tt.wantHost, s.host, "Host of %s", tt.giveURL)
			assert.Equal(t, tt.wantRequestURI, s.requestURI, "request-target of %s", tt.giveURL)
			assert.Equal(t, wantURL, req.URL.String(), "the caller's request changed")
			assert.Equal(t, tt.giveHost, req.Host, "the caller's request changed")
		})
	}
}

func TestRequestHeaderRules(t *testing.T) {
	srv, got := recorder(t)
	p := newTestPool(t, Config{
		Origins: []Server{{URL: srv.URL}},
		RequestHeaders: HeaderRules{
			Add:    map[string]string{"x-from-cdn": "1", "X-Pool": "static"},
			Remove: []string{"cookie", "X-From-CDN"},
		},
	})
	req := httptestRequest(t)
	req.Header.Set("Cookie", "session=secret")
	req.Header.Set("X-From-CDN", "forged")
	req.Header.Set("CDN-Loop", "outpost")
	req.Header.Set("Accept", "image/avif")
	before := req.Header.Clone()

	_, _, err := send(p, req)

	require.NoError(t, err)
	h := (<-got).header
	assert.Empty(t, h.Values("Cookie"))
	assert.Equal(t, []string{"1"}, h.Values("X-From-Cdn"), "replaces the client's value")
	assert.Equal(t, "static", h.Get("X-Pool"))
	assert.Equal(t, "outpost", h.Get("CDN-Loop"))
	assert.Equal(t, "image/avif", h.Get("Accept"))
	assert.Equal(t, before, req.Header, "the caller's headers changed")
}
