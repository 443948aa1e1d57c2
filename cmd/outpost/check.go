package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/storage"
)

// cmdCheck validates a configuration without serving, as `nginx -t` does:
// the flags and file are resolved as serve resolves them, the admin token
// and certificates are read, and every origin pool is built (and closed at
// once), so what check accepts, serve starts with. It exits 0 and says what
// it checked, or 2 and names the field and line.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags("outpost check", stderr)
	if err := f.fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outpost check: unexpected argument %q\n", f.fs.Arg(0))
		return 2
	}
	s, err := f.resolve()
	if err == nil {
		err = checkSettings(s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "outpost check: %v\n", err)
		return 2
	}
	what := f.config
	if what == "" {
		what = "flags"
	}
	tls := "off"
	if s.tlsCert != nil {
		tls = fmt.Sprintf("%d certificate pair(s)", len(s.tlsFiles))
		if s.http3 {
			tls += ", HTTP/3"
		}
	}
	fmt.Fprintf(stdout, "outpost check: %s is valid: %d host entries, %d catch-all origins, %d parents, TLS %s\n",
		what, len(s.hosts), len(s.origins), len(s.parents), tls)
	return 0
}

// checkSettings does what newNode does with s beyond resolving it, short of
// storage and listeners: the token, the pools, the edge's host table.
func checkSettings(s *settings) error {
	if _, err := s.adminToken(); err != nil {
		return err
	}
	// The pools are built as serve builds them, without their active
	// health checks: a check sends no request to anyone.
	quiet := *s
	quiet.hosts = append([]hostSettings(nil), s.hosts...)
	for i := range quiet.hosts {
		quiet.hosts[i].health.path = ""
	}
	quiet.parentHealth.path = ""
	n := &node{s: &quiet, log: slog.New(slog.DiscardHandler)}
	set, err := n.buildHosts(&quiet)
	if err != nil {
		return err
	}
	defer set.close()
	if s.tlsCert != nil {
		if _, err := loadCertSet(s.tlsFiles); err != nil {
			return err
		}
	}
	// The edge validates its host table as a reload's SetHosts does.
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 1 << 20})
	if err != nil {
		return err
	}
	defer mem.Close()
	eh, err := edge.New(edge.Config{Name: s.name, Store: mem, Hosts: set.hosts, Compression: s.compression, TrustedProxies: s.trustedProxies})
	if err != nil {
		return err
	}
	return eh.Close()
}
