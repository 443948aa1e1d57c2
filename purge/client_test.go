package purge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newGuardedAdmin serves ix's purge handler behind RequireToken.
func newGuardedAdmin(t *testing.T, ix *Index, token string) *httptest.Server {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Purger: ix})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/purge", h)
	srv := httptest.NewServer(RequireToken(token, mux))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientPurge(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	srv := newGuardedAdmin(t, ix, "s3cret")
	c := &Client{Admin: srv.URL + "/", Token: "s3cret", HTTP: srv.Client()}
	res, err := c.Purge(context.Background(), Request{URLs: []string{"http://a.test/x"}, Hosts: []string{"b.test"}})
	require.NoError(t, err)
	assert.Equal(t, Result{ID: ix.Recent(1)[0].ID, Bans: 2}, res)
}

func TestClientReportsServerErrors(t *testing.T) {
	tests := []struct {
		name        string
		giveToken   string
		giveReq     Request
		wantStatus  int
		wantMessage string
	}{
		{"invalid request", "s3cret", Request{URLs: []string{"a.test/x"}}, http.StatusBadRequest, `urls[0] "a.test/x": not an absolute http(s) URL`},
		{"nothing to purge", "s3cret", Request{Soft: true}, http.StatusBadRequest, "nothing to purge: give urls, prefixes, tags, hosts or all"},
		{"missing token", "", Request{All: true}, http.StatusUnauthorized, "missing bearer token"},
		{"wrong token", "guess", Request{All: true}, http.StatusUnauthorized, "invalid bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newIndex(t, newClock(), Config{})
			srv := newGuardedAdmin(t, ix, "s3cret")
			c := &Client{Admin: srv.URL, Token: tt.giveToken}
			_, err := c.Purge(context.Background(), tt.giveReq)
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, &APIError{StatusCode: tt.wantStatus, Message: tt.wantMessage}, ae)
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.Zero(t, ix.Len())
		})
	}
}

func TestClientNonJSONErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/base/purge", r.URL.Path)
		http.Error(w, "upstream proxy says no", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	_, err := (&Client{Admin: srv.URL + "/base"}).Purge(context.Background(), Request{All: true})
	assert.EqualError(t, err, "purge: admin API answered 502 Bad Gateway: upstream proxy says no")
}

func TestClientBadAdminURL(t *testing.T) {
	for _, admin := range []string{"", "127.0.0.1:9091", "ftp://a.test", "http://"} {
		_, err := (&Client{Admin: admin}).Purge(context.Background(), Request{All: true})
		assert.ErrorContains(t, err, "Client.Admin", "Admin %q", admin)
	}
}

func TestReadURLs(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    []string
		wantErr string
	}{
		{"lines", "http://a.test/1\nhttps://a.test/2\n", []string{"http://a.test/1", "https://a.test/2"}, ""},
		{"blanks comments and spaces", "# deploy 42\n\n  http://a.test/1  \r\n\t# http://skipped.test/\nhttp://a.test/2", []string{"http://a.test/1", "http://a.test/2"}, ""},
		{"empty", "", nil, ""},
		{"bad line", "http://a.test/1\n\n/relative\n", nil, `purge: line 3 "/relative": not an absolute http(s) URL`},
		{"too long", "http://a.test/1\nhttp://a.test/" + strings.Repeat("x", maxURLLen) + "\n", nil, "purge: line 2: longer than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadURLs(strings.NewReader(tt.give))
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr, "ReadURLs(%q)", tt.give)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "ReadURLs(%q)", tt.give)
		})
	}
}
