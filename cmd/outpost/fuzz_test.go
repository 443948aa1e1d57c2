package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"256MiB", "1.5GB", "4096", "0", "12XB", " 8 KiB ", "1e3", "-1B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if again, err := parseSize(formatSize(n)); err != nil || again != n {
			t.Fatalf("parseSize(%q) = %d, formatted %q, parsed back %d, %v", s, n, formatSize(n), again, err)
		}
	})
}

// FuzzConfig: any configuration file either resolves or fails with a
// configuration error that names a field, never a panic.
func FuzzConfig(f *testing.F) {
	f.Add("listen: \":8080\"\nhosts:\n  - names: [a.example]\n    origins: [\"http://o\"]\n")
	f.Add("storage: { memory: 64MiB, disk: { max_object: 1MiB } }\nlimits: { header_count: 10, header_timeout: 1s }\n")
	f.Add("hosts:\n  - origins: [{url: \"https://o\", weight: 3}]\n    health: { path: /h, interval: 5s }\n    timeouts: { dial: 1s }\n")
	f.Add("cache: { stale_if_unreachable: off, max_variants: 4 }\npurge_bus: { nats: \"nats://n:4222\" }\nname: edge-1\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		fc, err := parseConfig([]byte(yaml), "fuzz.yaml")
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) || ce.Field == "" {
				t.Fatalf("parseConfig(%q): %v is no configuration error", yaml, err)
			}
			return
		}
		// The files a configuration names are read elsewhere, or are
		// certificates: not the parser's business.
		fc.TLS = listenerTLS{}
		fc.Admin.TokenFile.V = ""
		fl := newServeFlags("outpost serve", io.Discard)
		if err := fl.fs.Parse([]string{"--origin", "http://origin.example"}); err != nil {
			t.Fatal(err)
		}
		s, err := fl.resolveConfig(fc, map[string]bool{"origin": true})
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) || ce.Field == "" || strings.TrimSpace(ce.Msg) == "" {
				t.Fatalf("resolve(%q): %v is no configuration error naming a field", yaml, err)
			}
			return
		}
		if s.limits.headerTimeout <= 0 || s.limits.maxConns <= 0 || s.limits.requestLine+2 > s.limits.headerBytes {
			t.Fatalf("resolve(%q) gave limits %+v", yaml, s.limits)
		}
	})
}
