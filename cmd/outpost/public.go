package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/outpost-cdn/outpost/purge"
)

// purgeMethod answers the PURGE method on the public listener (enabled by
// admin.purge_method): the request's own URL is purged, every variant, and
// only with the admin token. "Outpost-Soft-Purge: 1" makes it soft.
func (n *node) purgeMethod(next http.Handler) http.Handler {
	purgeOne := purge.RequireToken(n.token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		res, err := n.purger.Purge(r.Context(), purge.Request{
			URLs: []string{scheme + "://" + r.Host + r.URL.RequestURI()},
			Soft: r.Header.Get("Outpost-Soft-Purge") == "1",
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		warning := ""
		if pe, ok := errors.AsType[*purge.PublishError](err); ok {
			// In force here; the bus retries it (purge.Handler says the same).
			n.log.Warn("purge: in force here but not published to the fleet", "id", pe.ID, "err", pe.Err)
			warning, err = "in force on this node only: the purge bus did not acknowledge it", nil
		}
		if err != nil {
			status := http.StatusInternalServerError
			var ve *purge.ValidationError
			if errors.As(err, &ve) {
				status = http.StatusBadRequest
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(purge.Result{ID: res.ID, Bans: len(res.Bans), Purged: res.Purged, Warning: warning})
	}))
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
