package purge

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken returns a handler that passes to next only the requests
// carrying `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is
// case-insensitive). Others get 401 with a WWW-Authenticate challenge
// (RFC 6750 §3: error="invalid_token" when a wrong token was sent) and a
// JSON {"error": "..."} body. Tokens are compared in constant time, their
// length included (both are hashed first). An empty token admits no one.
func RequireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="outpost"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="outpost", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an Authorization field value using the
// Bearer scheme.
func bearerToken(v string) (string, bool) {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}
