package purge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRequireToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tests := []struct {
		name          string
		giveToken     string
		giveAuth      []string
		wantStatus    int
		wantChallenge string
	}{
		{"right token", "s3cret", []string{"Bearer s3cret"}, http.StatusNoContent, ""},
		{"scheme in any case", "s3cret", []string{"bearer s3cret"}, http.StatusNoContent, ""},
		{"missing", "s3cret", nil, http.StatusUnauthorized, `Bearer realm="outpost"`},
		{"empty", "s3cret", []string{""}, http.StatusUnauthorized, `Bearer realm="outpost"`},
		{"other scheme", "s3cret", []string{"Basic czNjcmV0"}, http.StatusUnauthorized, `Bearer realm="outpost"`},
		{"no token after scheme", "s3cret", []string{"Bearer "}, http.StatusUnauthorized, `Bearer realm="outpost"`},
		{"wrong token", "s3cret", []string{"Bearer s3cre"}, http.StatusUnauthorized, `Bearer realm="outpost", error="invalid_token"`},
		{"token with suffix", "s3cret", []string{"Bearer s3cret2"}, http.StatusUnauthorized, `Bearer realm="outpost", error="invalid_token"`},
		{"empty token configured admits no one", "", []string{"Bearer x"}, http.StatusUnauthorized, `Bearer realm="outpost", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/purge", nil)
			for _, v := range tt.giveAuth {
				r.Header.Add("Authorization", v)
			}
			w := httptest.NewRecorder()
			RequireToken(tt.giveToken, ok).ServeHTTP(w, r)
			assert.Equal(t, tt.wantStatus, w.Code, "Authorization %q", tt.giveAuth)
			assert.Equal(t, tt.wantChallenge, w.Header().Get("WWW-Authenticate"))
			if tt.wantStatus == http.StatusUnauthorized {
				assert.Contains(t, w.Body.String(), `"error":`)
			}
		})
	}
}
