package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/access"
)

// signKeyEnv names the environment variable that may hold the key
// `outpost sign` signs with.
const signKeyEnv = "OUTPOST_SIGN_KEY"

// cmdSign is `outpost sign URL [--ttl 1h] [--prefix P] [--ip ADDR]`: it
// prints URL signed for the host's signed_urls, for deploy scripts. The
// key is --key-file's, else $OUTPOST_SIGN_KEY, else the first key file of
// the host entry that serves URL's host in --config.
func cmdSign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpost sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ttl := fs.Duration("ttl", time.Hour, "how long the URL works")
	prefix := fs.String("prefix", "", "sign for every path under this `prefix` (ending in /) instead of the exact path")
	ip := fs.String("ip", "", "bind the URL to this client `address` or CIDR")
	keyFile := fs.String("key-file", "", "read the signing key from `FILE`")
	config := fs.String("config", "", "take the key from the host entry of this configuration `FILE` that serves the URL")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: outpost sign [--ttl 1h] [--prefix P] [--ip ADDR] [--key-file FILE | --config FILE] URL")
		fs.PrintDefaults()
	}
	// Flags may come before or after the URL (`outpost sign URL --ttl 1h`).
	var urls []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage(err)
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(urls) != 1 {
		fmt.Fprintln(stderr, "outpost sign: give exactly one URL")
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintf(stderr, "outpost sign: --ttl %v: must be positive\n", *ttl)
		return 2
	}
	key, err := signingKey(*keyFile, *config, urls[0])
	if err != nil {
		fmt.Fprintf(stderr, "outpost sign: %v\n", err)
		return 2
	}
	signed, err := access.Sign(urls[0], key, access.Token{Expires: time.Now().Add(*ttl), Prefix: *prefix, IP: *ip})
	if err != nil {
		fmt.Fprintf(stderr, "outpost sign: %v\n", strings.TrimPrefix(err.Error(), "access: sign: "))
		return 2
	}
	fmt.Fprintln(stdout, signed)
	return 0
}

// signingKey finds the key to sign rawURL with.
func signingKey(keyFile, config, rawURL string) ([]byte, error) {
	switch {
	case keyFile != "":
		return readKeyFile(keyFile)
	case config == "":
		if k := strings.TrimSpace(os.Getenv(signKeyEnv)); k != "" {
			if len(k) < 16 {
				return nil, fmt.Errorf("%s: key of %d bytes, want at least 16", signKeyEnv, len(k))
			}
			return []byte(k), nil
		}
		return nil, fmt.Errorf("no key: give --key-file, --config or %s", signKeyEnv)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("%q: with --config, give an absolute URL (its host picks the host entry)", rawURL)
	}
	fc, err := loadConfigFile(config)
	if err != nil {
		return nil, err
	}
	// The entry the edge would route the URL to: an exact name, else the
	// longest wildcard, else the catch-all.
	host := strings.ToLower(u.Hostname())
	best, bestLen := -1, -1
	for i := range fc.Hosts {
		if len(fc.Hosts[i].Names) == 0 && bestLen < 0 {
			best = i
		}
		for _, n := range fc.Hosts[i].Names {
			name := strings.ToLower(strings.TrimSpace(n.V))
			if name == host {
				return hostKey(i, &fc.Hosts[i])
			}
			if suffix, ok := strings.CutPrefix(name, "*"); ok && len(host) > len(suffix) && strings.HasSuffix(host, suffix) && len(suffix) > bestLen {
				best, bestLen = i, len(suffix)
			}
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("%s: no host entry serves %s", config, host)
	}
	return hostKey(best, &fc.Hosts[best])
}

// hostKey reads the first (signing) key file of a host entry.
func hostKey(i int, h *hostConfig) ([]byte, error) {
	if h.SignedURLs == nil || len(h.SignedURLs.KeyFiles) == 0 {
		return nil, badField(fmt.Sprintf("hosts[%d].signed_urls", i), h.Line, "not set: this host does not check signed URLs")
	}
	return readKeyFile(h.SignedURLs.KeyFiles[0].V)
}
