package main

import (
	"crypto/tls"
	"net/http"

	"github.com/outpost-cdn/outpost/purge"
)

// purgeMethod answers the PURGE method on the public listener (enabled by
// admin.purge_method): the request's own URL is purged, every variant, and
// only with the admin token. "Outpost-Soft-Purge: 1" makes it soft. The
// answer is the admin API's (purge.Handler.ServeRequest).
func (n *node) purgeMethod(next http.Handler) http.Handler {
	purgeOne := n.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		n.purgeAPI.ServeRequest(w, r, purge.Request{
			URLs: []string{scheme + "://" + r.Host + r.URL.RequestURI()},
			Soft: r.Header.Get("Outpost-Soft-Purge") == "1",
		})
	}), true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			purgeOne.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusePurge answers PURGE with 405 when the method is not enabled, rather
// than passing it to an origin.
func refusePurge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "405 Method Not Allowed: PURGE is not enabled on this node", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isTLS marks a synthetic request as received over TLS, so the edge keys
// it under https.
func isTLS(scheme string) *tls.ConnectionState {
	if scheme == "https" {
		return &tls.ConnectionState{}
	}
	return nil
}
