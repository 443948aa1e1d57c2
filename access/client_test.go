package access

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tt := range []struct {
		name     string
		givePeer string
		giveXFF  []string
		want     string
	}{
		{"peer", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"peer IPv6", "[2001:db8::1]:5000", nil, "2001:db8::1"},
		{"mapped peer", "[::ffff:192.0.2.1]:5000", nil, "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"},
		{"trusted peer names the client", "10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"rightmost untrusted entry", "10.1.2.3:5000", []string{"203.0.113.66, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"over several fields", "10.1.2.3:5000", []string{"203.0.113.66", "198.51.100.7", "10.9.9.9"}, "198.51.100.7"},
		{"entry with port", "10.1.2.3:5000", []string{"[2001:db8::7]:1234"}, "2001:db8::7"},
		{"all trusted", "10.1.2.3:5000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"no header from a trusted peer", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"garbage stops at the last trusted hop", "10.1.2.3:5000", []string{"198.51.100.7, garbage, 10.9.9.9"}, "10.9.9.9"},
		{"no address", "pipe", nil, "invalid IP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.givePeer
			r.Header["X-Forwarded-For"] = tt.giveXFF
			assert.Equal(t, tt.want, ClientAddr(r, trusted).String())
		})
	}
}
