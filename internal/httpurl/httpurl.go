// Package httpurl holds the one rule for the URLs that purges, warm-ups,
// the admin client and the configuration name: absolute http or https URLs
// with a host.
package httpurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrNotHTTP reports a URL that parses but is not an absolute http or https
// URL with a host.
var ErrNotHTTP = errors.New("not an absolute http(s) URL")

// Parse parses s as an absolute http or https URL with a host. The scheme
// is matched without regard to case (RFC 3986 §3.1). A string that does not
// parse fails with the parser's reason; one that parses but is not such a
// URL fails with ErrNotHTTP.
func Parse(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") || u.Hostname() == "" {
		return nil, ErrNotHTTP
	}
	return u, nil
}
