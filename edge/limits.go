package edge

import (
	"net/http"
)

// The fill limits (Config.MaxFills, Config.MaxWaiters), by the names their
// refusals are counted under in outpost_fills_refused_total.
const (
	limitFills   = "max_fills"
	limitWaiters = "max_waiters"
)

// fillsFull reports whether the node runs as many upstream fetches as
// MaxFills allows.
func (h *Handler) fillsFull() bool { return h.running.Load() >= int64(h.cfg.MaxFills) }

// refuseFill answers a miss that a fill limit keeps from going upstream:
// 503 with Retry-After, never stored, with the limit in Cache-Status
// (detail="max_fills" or "max_waiters").
func (h *Handler) refuseFill(w http.ResponseWriter, limit, fwd string) {
	h.metrics.fillsRefused[limit].Inc()
	h.metrics.errors.Inc()
	h.writeError(w, http.StatusServiceUnavailable, &cacheStatus{fwd: fwd, detail: limit}, "Retry-After", "1")
}
