package edge

// Purges across tiers.
//
// A purge is a ban on what was obtained from the origin before its time
// (package purge), so each stored response records when its representation
// was obtained from the origin: storage.Meta.OriginTime, which purges
// compare with (Meta.ObtainedAt). For a response from the origin it is when
// the request left. For a copy fetched from a parent tier it is when the
// parent's copy was obtained, not when this node fetched it: a parent that
// has not applied a purge yet hands on its pre-purge copy, and that copy is
// as old here as there, so the purge catches it on this node whenever it
// arrives. An Outpost parent says the exact time in originTimeField, to
// inner tiers only; any other cache's copy is dated from its Age,
// conservatively (whole seconds, one more for the rounding): dated too old,
// a copy only costs a refetch, while dated too young it would outlive a
// purge. The origin's Date is never used: a skewed origin clock would date
// every refetch before the purge and ban it again.
//
// Every refetch after a purge asks upstream for a copy no older than the
// purge (sinceLastPurge: max-age, and Outpost-Purged-At between Outpost
// tiers), with the newest purge this node knows for the URL, or the one a
// child tier passed on: a tier that has not applied the purge passes its
// child's purge time on to its own parent, however many tiers there are.
//
// A flight whose response this node's bans reject (it predates a purge
// applied since the flight began, or a lagging parent handed on an old copy)
// is not used to answer a request: the request fetches again, asking for a
// copy no older than the purge (flightPurged). So once a node has applied a
// purge, it never answers with what the purge banned, stored or in flight.
//
// A node that has not yet replayed the purges it missed while down answers
// no request from storage (replaying): it fetches through, and stores what
// it fetches, which is newer than anything the replay can ban.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// originTimeField carries, from a tier to the tier below it (requests that
// carry CDN-Loop), when the representation of the response was obtained
// from the origin (Unix nanoseconds): the exact form of what Age tells.
// It is never stored, and removed before a response leaves the outermost
// tier (cdnHeaders).
const originTimeField = "Outpost-Origin-Time"

// takeOriginTime returns when the representation of a response received
// upstream at reqTime (its request's send time) was obtained from the
// origin, and removes originTimeField from hdr: an Outpost parent's
// originTimeField, or else reqTime less the response's Age and one second
// (Age counts whole seconds), or else reqTime, for a response from the
// origin itself. It is never later than reqTime: a parent's clock ahead of
// ours cannot make a copy younger than the request that fetched it.
func takeOriginTime(hdr http.Header, reqTime time.Time) time.Time {
	t := originTimeOf(hdr, reqTime)
	delete(hdr, originTimeField)
	return t
}

// originTimeOf is takeOriginTime without changing hdr.
func originTimeOf(hdr http.Header, reqTime time.Time) time.Time {
	if v, ok := hdr[originTimeField]; ok {
		if ns, err := parseDigits(firstLine(v)); err == nil && ns > 0 {
			return earlier(time.Unix(0, ns), reqTime)
		}
	}
	if v, ok := hdr["Age"]; ok {
		first, _, _ := strings.Cut(firstLine(v), ",")
		if n, ok := parseDelta(trimOWS(first)); ok {
			return reqTime.Add(-time.Duration(n+1) * time.Second)
		}
	}
	return reqTime
}

// setOriginTime tells an inner tier when the representation it is sent
// was obtained from the origin (respond, for requests with CDN-Loop).
func setOriginTime(hdr http.Header, m *storage.Meta) {
	if t := m.ObtainedAt(); !t.IsZero() && t.UnixNano() > 0 {
		hdr[originTimeField] = []string{strconv.FormatInt(t.UnixNano(), 10)}
	}
}

// askNoOlderThanPurges adds to out, a fill's upstream request for r, what
// asks the tiers above for a copy no older than the newest purge of the
// URL: the one this node knows (banAt, or Newest), or the one r carries
// from a child tier, which this node may not have applied yet. A child's
// max-age is the whole-second form of its Outpost-Purged-At, so it is
// replaced by the one for the newer of the two.
func (h *Handler) askNoOlderThanPurges(out http.Header, r *http.Request, urlKey string, banAt time.Time) {
	if child := childPurgedAt(r); !child.IsZero() {
		if cc := withoutMaxAge(out["Cache-Control"]); len(cc) > 0 {
			out["Cache-Control"] = cc
		} else {
			delete(out, "Cache-Control")
		}
		banAt = later(banAt, child)
	}
	h.sinceLastPurge(out, urlKey, banAt)
}

// withoutMaxAge returns the Cache-Control field lines v without their
// max-age directives.
func withoutMaxAge(v []string) []string {
	var out []string
	for _, line := range v {
		var kept []string
		for d := range strings.SplitSeq(line, ",") {
			name, _, _ := strings.Cut(trimOWS(d), "=")
			if d = trimOWS(d); d != "" && !strings.EqualFold(trimOWS(name), "max-age") {
				kept = append(kept, d)
			}
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ", "))
		}
	}
	return out
}

// childPurgedAt returns the purge time a child tier's refetch carries
// (Outpost-Purged-At, honoured from another tier only), or zero: the fill
// it causes passes it on, so a parent that has not applied the purge
// still asks its own parent for a copy no older.
func childPurgedAt(r *http.Request) time.Time {
	v, ok := r.Header[purgedAtField]
	if !ok || len(v) != 1 || !innerTier(r) {
		return time.Time{}
	}
	ns, err := parseDigits(v[0])
	if err != nil || ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// flightPurged reports whether the response a flight announced must not
// answer a request because this node's bans reject it: it was obtained
// before a purge applied here (since the flight began, or before: a parent
// that had not applied the purge handed on its old copy). The request then
// fetches again; Check has noted the purge for the URL (a tag purge too),
// so the refetch asks upstream for a copy no older. A copy served stale
// because upstream failed, where a soft purge allows it (stale-if-error),
// is used. A request looks again at most maxAttempts times (the last on its
// own), so an upstream that keeps handing on an older copy (a cache that is
// not Outpost and ignores max-age) costs each request at most two more
// fetches, never a loop; that copy is then used, and not stored.
func (h *Handler) flightPurged(res *flightResult, attempt int) bool {
	if h.cfg.Bans == nil || attempt >= maxAttempts || res.meta == nil {
		return false
	}
	if res.kind != outStream && res.kind != outObject {
		return false
	}
	_, soft, banned := h.cfg.Bans.Check(res.meta)
	return banned && !(soft && res.status.detail != "")
}

// replayingBans is implemented by a Bans that may lack purges issued while
// the node was down: a fleet's bus replays them at start.
type replayingBans interface {
	// Replaying reports whether the replay is still under way.
	Replaying() bool
}

// replaying reports whether stored responses must not be used because the
// purges the node missed are still being replayed: any of them may ban
// what is stored.
func (h *Handler) replaying() bool {
	rb, ok := h.cfg.Bans.(replayingBans)
	return ok && rb.Replaying()
}

// earlier returns the earlier of two times.
func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
