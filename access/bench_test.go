package access

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkVerify is the cost of checking one signed URL's token: a URL
// seen before (the token cache answers), and the HMAC a new one costs.
func BenchmarkVerify(b *testing.B) {
	b.Run("hmac", func(b *testing.B) {
		v, err := newVerifier(SignedURLs{Keys: [][]byte{[]byte(vectorKey)}})
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte("1798761600\npath:/videos/intro.mp4\n")
		sig := "t_gOkhApcflK8Cxwupl4WXD3kDHB06kemsuecHZlCZ8"
		b.ReportAllocs()
		for b.Loop() {
			if !v.keys[0].check(msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
	for _, bc := range []struct {
		name, url string
	}{
		{"exact", vectorURL},
		{"prefix+ip", vectorPrefix},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := newVerifier(SignedURLs{Keys: [][]byte{[]byte(vectorKey)}})
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, bc.url, nil)
			path, query := r.URL.EscapedPath(), r.URL.RawQuery
			now := time.Unix(vectorExp-60, 0)
			client := func() netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, 7}) }
			b.ReportAllocs()
			for b.Loop() {
				if reason := v.verify(path, query, now, client); reason != "" {
					b.Fatal(reason)
				}
			}
		})
	}
}

// BenchmarkRateLimit is the cost of taking a request token for a known
// client from its address's and its prefix's buckets.
func BenchmarkRateLimit(b *testing.B) {
	l, err := newLimiter(RateLimit{
		Client: Limit{Requests: 1e12, Bandwidth: 1 << 40},
		Prefix: Limit{Requests: 1e12, Bandwidth: 1 << 40},
	})
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if reason, _, _ := l.admit(time.Now(), client); reason != "" {
			b.Fatal(reason)
		}
	}
}

// BenchmarkAdmit is a whole Policy decision for one request, with no rule,
// with each rule alone and with all of them.
func BenchmarkAdmit(b *testing.B) {
	rate := RateLimit{Client: Limit{Requests: 1e12, Bandwidth: 1 << 40}, Prefix: Limit{Requests: 1e12}}
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"off", Config{}},
		{"signed", Config{SignedURLs: SignedURLs{Keys: [][]byte{[]byte(vectorKey)}}}},
		{"hotlink", Config{Hotlink: Hotlink{Referers: []string{"www.example.com", "*.example.org"}}}},
		{"ratelimit", Config{RateLimit: rate}},
		{"all", Config{
			SignedURLs: SignedURLs{Keys: [][]byte{[]byte(vectorKey)}},
			Hotlink:    Hotlink{Referers: []string{"www.example.com", "*.example.org"}},
			RateLimit:  rate,
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.cfg.Now = func() time.Time { return time.Unix(vectorExp-60, 0) }
			g := NewGate(nil)
			if bc.name != "off" {
				p, err := New(bc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				g.Store(p)
			}
			r := signedRequest(vectorURL, "203.0.113.7", "Referer", "https://img.example.org/page")
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := g.Admit(w, r); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}
