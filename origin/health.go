package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HealthCheck configures active health checks: a loop owned by the Pool (or
// Shield) sends GET Path to every server each Interval; a server that fails
// Fall checks in a row is down and receives no client traffic until it
// passes Rise checks in a row. Servers start up. The zero HealthCheck sends
// no checks.
type HealthCheck struct {
	// Path is the path, with an optional query, that a check requests from
	// each server, without the pool's path prefix. Empty means no checks.
	Path string
	// Host is the Host header of a check. Empty means the server's host.
	Host string
	// Interval is the time between the starts of two checks of a server. The
	// first check starts at once. Zero means 5s.
	Interval time.Duration
	// Timeout bounds a check, connection included; it must not exceed
	// Interval. Zero means 2s or Interval, whichever is shorter.
	Timeout time.Duration
	// Status is the response status a healthy server sends. Zero means any
	// 2xx or 3xx.
	Status int
	// Fall is the number of failed checks in a row that take a server down.
	// Zero means 3.
	Fall int
	// Rise is the number of passed checks in a row that bring a server back.
	// Zero means 2.
	Rise int
}

// FieldError names the field of a HealthCheck (or Config) that is wrong,
// so a caller reading a configuration file can point at its line.
type FieldError struct {
	Field  string // "health.timeout", ...
	Reason string // the value and what is wrong with it
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports the first bad field of hc as a *FieldError, as NewPool
// would.
func (hc HealthCheck) Validate() error {
	_, err := hc.withDefaults()
	return err
}

// withDefaults returns hc with its zero fields set, or a *FieldError for
// the first bad field.
func (hc HealthCheck) withDefaults() (HealthCheck, error) {
	if hc.Path == "" {
		return hc, nil
	}
	if !strings.HasPrefix(hc.Path, "/") {
		return hc, fieldErr("health.path", "%q: must start with /", hc.Path)
	}
	if strings.ContainsAny(hc.Path, " #\r\n") {
		return hc, fieldErr("health.path", "%q: must be a path and query without spaces or fragment", hc.Path)
	}
	if hc.Interval < 0 {
		return hc, fieldErr("health.interval", "%v: must not be negative", hc.Interval)
	}
	if hc.Timeout < 0 {
		return hc, fieldErr("health.timeout", "%v: must not be negative", hc.Timeout)
	}
	setDefault(&hc.Interval, 5*time.Second)
	setDefault(&hc.Timeout, min(2*time.Second, hc.Interval))
	setDefault(&hc.Fall, 3)
	setDefault(&hc.Rise, 2)
	switch {
	case hc.Timeout > hc.Interval:
		return hc, fieldErr("health.timeout", "%v: must not exceed health.interval %v", hc.Timeout, hc.Interval)
	case hc.Status != 0 && (hc.Status < 100 || hc.Status > 599):
		return hc, fieldErr("health.status", "%d: not an HTTP status", hc.Status)
	case hc.Fall < 0:
		return hc, fieldErr("health.fall", "%d: must be positive", hc.Fall)
	case hc.Rise < 0:
		return hc, fieldErr("health.rise", "%d: must be positive", hc.Rise)
	case strings.ContainsAny(hc.Host, " /\r\n"):
		return hc, fieldErr("health.host", "%q: not a host", hc.Host)
	}
	return hc, nil
}

// startChecks starts one check loop per server; stopChecks ends them.
func (g *group) startChecks(hc HealthCheck) {
	if hc.Path == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stopChecks = cancel
	for _, s := range g.servers {
		g.checks.Go(func() { g.checkLoop(ctx, s, hc) })
	}
}

// checkLoop checks s at once, then every hc.Interval until ctx is done, and
// moves s down after hc.Fall failures in a row and up after hc.Rise passes.
// It alone writes s.checkDown, and logs each change once.
func (g *group) checkLoop(ctx context.Context, s *server, hc HealthCheck) {
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	var passed, failed int
	for {
		err := g.check(ctx, s, hc)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			passed, failed = passed+1, 0
			if passed >= hc.Rise && s.checkDown.Load() {
				s.checkDown.Store(false)
				g.log.Info("server up", "server", s.name, "checks_passed", passed)
			}
		default:
			passed, failed = 0, failed+1
			s.lastFailure.Store(g.now() + 1)
			if failed >= hc.Fall && !s.checkDown.Load() {
				s.checkDown.Store(true)
				g.log.Warn("server down", "server", s.name, "checks_failed", failed, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check sends one health check to s, on a connection of its own, and
// reports why s failed it.
func (g *group) check(ctx context.Context, s *server, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.scheme+"://"+s.host+hc.Path, nil)
	if err != nil {
		return err
	}
	if hc.Host != "" {
		req.Host = hc.Host
	}
	req.Header.Set("User-Agent", "outpost-health-check")
	if g.bucket != nil {
		// A bucket checks the object at Path, signed like any request.
		req.Host = s.host
		if err := g.bucket.sign(ctx, req); err != nil {
			return err
		}
	}
	resp, err := g.checkTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ok := resp.StatusCode == hc.Status || hc.Status == 0 && resp.StatusCode >= 200 && resp.StatusCode < 400
	if !ok {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
