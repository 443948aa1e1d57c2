package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reflectingOrigin behaves as web frameworks behind proxies do: it trusts
// forwarding and override headers to build links and redirects, to route
// (X-Original-URL, X-Rewrite-URL, method overrides) and to greet the
// client, and it marks its answers cacheable. Anything a client can make
// it say ends up in the body or the header of a response the cache may
// store; a poisoned cache serves it to the next client.
func reflectingOrigin(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	path := r.URL.Path
	for _, f := range []string{"X-Original-Url", "X-Rewrite-Url"} {
		if v := h.Get(f); v != "" {
			path = v // IIS/Symfony-style rewrite
		}
	}
	if strings.HasPrefix(path, "/account") {
		w.Header().Set("Cache-Control", "private")
		fmt.Fprintf(w, "account page for %s\n", h.Get("Cookie"))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=600")
	host := r.Host
	for _, f := range []string{"X-Forwarded-Host", "X-Host", "X-Original-Host", "X-Forwarded-Server"} {
		if v := h.Get(f); v != "" {
			host = v
		}
	}
	if fwd := h.Get("Forwarded"); fwd != "" {
		for _, part := range strings.Split(fwd, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "host") {
				host = strings.Trim(v, `"`)
			}
		}
	}
	if p := h.Get("X-Forwarded-Port"); p != "" {
		host += ":" + p
	}
	scheme := "https"
	if h.Get("X-Forwarded-Scheme") == "http" || h.Get("X-Forwarded-Proto") == "http" ||
		h.Get("X-Forwarded-Ssl") == "off" || h.Get("Front-End-Https") == "off" {
		// "Redirect to HTTPS": behind a proxy that says the client
		// came over plain HTTP.
		w.Header().Set("Location", "https://"+host+path)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	method := r.Method
	for _, f := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		if v := h.Get(f); v != "" {
			method = v
		}
	}
	prefix := h.Get("X-Forwarded-Prefix")
	w.Header().Set("Link", "<"+scheme+"://"+host+prefix+"/app.css>; rel=preload")
	fmt.Fprintf(w, "page %s%s%s via %s\n", host, prefix, path, method)
	for _, f := range []string{"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "X-Forwarded-For"} {
		if v := h.Get(f); v != "" && strings.Contains(v, "evil") {
			fmt.Fprintf(w, "hello %s\n", v)
		}
	}
	if v := h.Get("X_forwarded_host"); v != "" { // what a CGI gateway makes of X_Forwarded_Host
		fmt.Fprintf(w, "cgi host %s\n", v)
	}
}

// poisonProbe is one attacker request: extra header fields on a URL the
// victim then asks for plainly.
type poisonProbe struct {
	name   string
	path   string
	header [][2]string
}

func poisonProbes() []poisonProbe {
	var probes []poisonProbe
	for _, f := range [][2]string{
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Host", "a.example.evil.example"},
		{"X-Host", "evil.example"},
		{"X-Original-Host", "evil.example"},
		{"X-Forwarded-Server", "evil.example"},
		{"Forwarded", "host=evil.example;proto=http"},
		{"Forwarded", `for=1.2.3.4;host="evil.example"`},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded-Ssl", "off"},
		{"Front-End-Https", "off"},
		{"X-Forwarded-Port", "1337"},
		{"X-Forwarded-Prefix", "/evil"},
		{"X-Original-URL", "/evil"},
		{"X-Rewrite-URL", "/evil"},
		{"X-Original-URL", "/account/settings"},
		{"X-Real-IP", "evil"},
		{"True-Client-IP", "evil"},
		{"X-Client-IP", "evil"},
		{"X-Forwarded-For", "evil"},
		{"X_Forwarded_Host", "evil.example"},
	} {
		probes = append(probes, poisonProbe{name: f[0] + ": " + f[1], path: "/page", header: [][2]string{f}})
	}
	probes = append(probes, poisonProbe{name: "several at once", path: "/page", header: [][2]string{
		{"X-Forwarded-Host", "evil.example"}, {"X-Forwarded-Proto", "http"}, {"X-Original-URL", "/evil"},
	}})
	// Path confusion: a private page under a static-looking URL, asked
	// for with the victim's cookie first, then without.
	for _, p := range []string{"/account.php/x.css", "/account/x.css", "/account;x.css", "/account%2fx.css", "/account%3bx.css", "/account/..%2fx.css"} {
		probes = append(probes, poisonProbe{name: "path confusion " + p, path: p, header: [][2]string{{"Cookie", "session=evil-secret"}}})
	}
	return probes
}

// unstrippedProbes use override headers the edge does not remove yet.
func unstrippedProbes() []poisonProbe {
	var probes []poisonProbe
	for _, f := range [][2]string{
		{"X-Forwarded-Scheme", "http"}, // Rack, nginx configurations
		{"X-HTTP-Method-Override", "EVIL"},
		{"X-HTTP-Method", "EVIL"},
		{"X-Method-Override", "EVIL"},
	} {
		probes = append(probes, poisonProbe{name: f[0] + ": " + f[1], path: "/page", header: [][2]string{f}})
	}
	return probes
}

// TestPoisoningProbes: an attacker sends each probe, then a victim asks for
// the same URL plainly; the victim must get what it would have got from a
// cold cache (nothing of the attacker's fields in its status, header or
// body).
func TestPoisoningProbes(t *testing.T) {
	runPoisonProbes(t, poisonProbes())
}

func TestPoisoningProbesUnstrippedOverrides(t *testing.T) {
	runPoisonProbes(t, unstrippedProbes())
}

func runPoisonProbes(t *testing.T, probes []poisonProbe) {
	o := newCountingOrigin(t, reflectingOrigin)
	// Over HTTPS, as a CDN serves: the origin redirects a client it is
	// told came over plain HTTP.
	certFile, keyFile, roots := selfSigned(t)
	cfg := writeFile(t, "outpost.yaml", "hosts:\n  - names: [a.example]\n    origins: [\""+o.URL+"\"]\n")
	tn := startNode(t, "--config", cfg, "--tls-cert", certFile, "--tls-key", keyFile)
	base := strings.Replace(tn.url, "http://", "https://", 1)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	get := func(path string, hdr [][2]string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		req.Host = "a.example"
		for _, kv := range hdr {
			req.Header[kv[0]] = []string{kv[1]} // as sent, X_Forwarded_Host too
		}
		resp, err := tr.RoundTrip(req) // no redirects followed
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d\n", resp.StatusCode)
		for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
			if k != "Date" && k != "Age" && k != "Cache-Status" {
				fmt.Fprintf(&sb, "%s: %s\n", k, strings.Join(resp.Header[k], ", "))
			}
		}
		sb.Write(b)
		return resp.StatusCode, sb.String()
	}
	poisoned := 0
	for i, p := range probes {
		// Each probe gets URLs of its own: cold keys. The control is
		// what a plain request gets from a cold cache.
		withQuery := func(q string) string {
			if strings.Contains(p.path, "?") {
				return p.path + "&" + q
			}
			return p.path + "?" + q
		}
		_, control := get(withQuery(fmt.Sprintf("control=%d", i)), nil)
		path := withQuery(fmt.Sprintf("probe=%d", i))
		get(path, p.header) // the attacker
		_, victim := get(path, nil)
		if victim != control {
			poisoned++
			t.Errorf("poisoned by %s: the victim got\n%s\ninstead of\n%s", p.name, victim, control)
		}
	}
	t.Logf("%d poisoning probes: %d poisoned responses", len(probes), poisoned)
	assert.Zero(t, poisoned)
}
