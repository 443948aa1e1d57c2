package edge

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// Bits the edge keeps in storage.Meta.Flags, decided when a response is stored.
const (
	// flagNoCache: stored with no-cache, so every reuse is validated first
	// (RFC 9111 §5.2.2.4).
	flagNoCache uint32 = 1 << iota
	// flagNoStale: must-revalidate, proxy-revalidate or s-maxage forbid
	// serving the response stale (RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10).
	flagNoStale
	// flagHeuristic: the lifetime is heuristic (RFC 9111 §4.2.2).
	flagHeuristic
)

// heuristicallyCacheable reports the status codes "cacheable by default"
// (RFC 9110 §15.1): a cache may store them without explicit freshness and
// give them a heuristic lifetime.
func heuristicallyCacheable(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// lifetimeOf computes a response's freshness lifetime for a shared cache
// (RFC 9111 §4.2.1): s-maxage, then max-age, then Expires minus Date, then
// a heuristic where allowed (§4.2.2). explicit reports whether a directive or
// Expires set it.
func (h *Handler) lifetimeOf(cc directives, hdr http.Header, status int, date time.Time) (life time.Duration, explicit, heuristic bool) {
	switch {
	case cc.sMaxAge != unset:
		return time.Duration(cc.sMaxAge) * time.Second, true, false
	case cc.maxAge != unset:
		return time.Duration(cc.maxAge) * time.Second, true, false
	case cc.invalid:
		// A malformed max-age or s-maxage: treat the response as stale
		// rather than guess (§4.2.1 permits considering it stale).
		return 0, true, false
	}
	if ev, ok := hdr["Expires"]; ok {
		// An invalid Expires, notably "0", means already expired (§5.3).
		exp, ok := parseHTTPDate(firstLine(ev))
		if !ok || len(ev) > 1 {
			return 0, true, false
		}
		return max(exp.Sub(date), 0), true, false
	}
	// Heuristic freshness only for codes cacheable by default or responses
	// marked public (§4.2.2), and only from Last-Modified: 10% of the time
	// since the last change, capped.
	if !heuristicallyCacheable(status) && !cc.public {
		return 0, false, false
	}
	lm, ok := parseHTTPDate(hdr.Get("Last-Modified"))
	if !ok || !lm.Before(date) {
		return 0, false, false
	}
	life = time.Duration(float64(date.Sub(lm)) * h.cfg.HeuristicFraction)
	return min(life, h.cfg.HeuristicMax), false, true
}

// correctedInitialAge implements the Age calculation of RFC 9111 §4.2.3 up
// to corrected_initial_age: the age the response already had when it
// arrived, from its Date, the Age it carried and the request's round trip.
func correctedInitialAge(hdr http.Header, date, reqTime, respTime time.Time) time.Duration {
	apparent := max(respTime.Sub(date), 0)
	var ageValue time.Duration
	if v, ok := hdr["Age"]; ok {
		// The first value of the first line counts (RFC 9111 §5.1 allows
		// one; "7200, 0" is an Age of 7200).
		first, _, _ := strings.Cut(firstLine(v), ",")
		if n, ok := parseDelta(trimOWS(first)); ok {
			ageValue = time.Duration(n) * time.Second
		}
	}
	corrected := ageValue + max(respTime.Sub(reqTime), 0)
	return max(apparent, corrected)
}

// currentAge is the age of a stored response now (RFC 9111 §4.2.3):
// corrected_initial_age plus the time it has been resident.
func currentAge(m *storage.Meta, now time.Time) time.Duration {
	return m.InitialAge + max(now.Sub(m.ResponseTime), 0)
}

// dateOf returns the response's Date, or respTime when it has none or an
// invalid one.
func dateOf(hdr http.Header, respTime time.Time) time.Time {
	if v, ok := hdr["Date"]; ok {
		if t, ok := parseHTTPDate(firstLine(v)); ok {
			return t
		}
	}
	return respTime
}

func firstLine(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// ageValue formats an age as the Age header's delta-seconds (RFC 9111 §5.1).
func ageValue(d time.Duration) string {
	return strconv.FormatInt(int64(max(d, 0)/time.Second), 10)
}

// usability is how a stored response may answer a request now.
type usability int

const (
	useFresh    usability = iota // fresh enough for this request
	useStale                     // stale, but the request accepts it (max-stale)
	useSWR                       // stale within stale-while-revalidate
	useValidate                  // must be validated with the origin first
)

// judge decides how a stored response may answer a request, given the
// request's directives (RFC 9111 §4.2, §5.2.1) and the node's policy.
func (h *Handler) judge(m *storage.Meta, rc *directives, age time.Duration, soft bool) usability {
	life := m.Lifetime
	if soft {
		// A soft purge makes the object stale at once; it may still be
		// served where staleness is allowed.
		life = 0
	}
	if m.Flags&flagNoCache != 0 {
		return useValidate
	}
	if rc.noCache && !h.cfg.IgnoreClientNoCache {
		return useValidate
	}
	if rc.maxAge != unset && age > time.Duration(rc.maxAge)*time.Second &&
		!(h.cfg.IgnoreClientNoCache && rc.maxAge == 0) {
		return useValidate
	}
	remaining := life - age
	if remaining > 0 {
		if rc.minFresh != unset && remaining < time.Duration(rc.minFresh)*time.Second {
			return useValidate
		}
		return useFresh
	}
	if m.Flags&flagNoStale != 0 {
		return useValidate
	}
	if rc.maxStale != unset && -remaining <= time.Duration(rc.maxStale)*time.Second {
		return useStale
	}
	if -remaining < m.StaleWhileRevalidate {
		return useSWR
	}
	return useValidate
}
