package edge

import (
	"sync"
	"time"
)

// missMarks remembers keys whose last response could not be shared
// ("hit-for-miss"): for a while, requests for them fetch on their own at
// once instead of queueing behind one another's fetches. A response that
// turns out storable clears the mark. The set is bounded; when full, an
// arbitrary mark is forgotten, which only costs one more coalesced wait.
type missMarks struct {
	mu  sync.Mutex
	m   map[string]time.Time
	max int
}

func newMissMarks(max int) *missMarks {
	return &missMarks{m: make(map[string]time.Time), max: max}
}

func (mm *missMarks) mark(key string, until time.Time) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if len(mm.m) >= mm.max {
		for k := range mm.m {
			delete(mm.m, k)
			break
		}
	}
	mm.m[key] = until
}

func (mm *missMarks) marked(key string, now time.Time) bool {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	until, ok := mm.m[key]
	if ok && !now.Before(until) {
		delete(mm.m, key)
		return false
	}
	return ok
}

func (mm *missMarks) clear(key string) {
	mm.mu.Lock()
	delete(mm.m, key)
	mm.mu.Unlock()
}
