package main

import (
	"container/heap"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// traffic counts what the public listener answers, for the status page:
// bytes by where they came from, requests waiting for their response to
// begin, collapsed answers, and the URLs asked most, by requests and by
// bytes. Safe for concurrent use; the request path pays a few atomic adds
// and two short critical sections.
type traffic struct {
	inProgress    atomic.Int64 // requests being answered
	waiting       atomic.Int64 // requests whose response has not begun
	cacheBytes    atomic.Int64 // body bytes of answers from the cache
	upstreamBytes atomic.Int64 // body bytes of answers fetched or passed through
	collapsed     atomic.Int64 // answers that joined another request's fill
	byRequests    *topK
	byBytes       *topK
}

// topURLs is how many URLs each top list keeps track of; the status page
// shows the first ones.
const topURLs = 256

func newTraffic() *traffic {
	return &traffic{byRequests: newTopK(topURLs), byBytes: newTopK(topURLs)}
}

// begin counts a request in; the recorder counts it out of the waiting
// ones when its response begins.
func (t *traffic) begin(rec *recorder) {
	t.inProgress.Add(1)
	t.waiting.Add(1)
	rec.traffic = t
}

// end counts a request's answer.
func (t *traffic) end(r *http.Request, rec *recorder, cacheStatus string) {
	if !rec.started {
		rec.started = true
		t.waiting.Add(-1)
	}
	t.inProgress.Add(-1)
	entry := cacheStatus[strings.LastIndexByte(cacheStatus, ',')+1:] // this node's entry comes last (RFC 9211 §2)
	switch {
	case strings.Contains(entry, "; hit"):
		t.cacheBytes.Add(rec.bytes)
	case cacheStatus != "":
		t.upstreamBytes.Add(rec.bytes)
	}
	if strings.Contains(entry, "collapsed") {
		t.collapsed.Add(1)
	}
	rec.key = append(append(rec.key[:0], r.Host...), r.URL.Path...)
	t.byRequests.add(rec.key, 1)
	if rec.bytes > 0 {
		t.byBytes.add(rec.key, float64(rec.bytes))
	}
}

// decay halves every count, so the top lists follow what is asked now.
func (t *traffic) decay() {
	t.byRequests.decay()
	t.byBytes.decay()
}

// topK estimates the heaviest keys of a stream in bounded memory with the
// Space-Saving algorithm (Metwally, Agrawal, El Abbadi, 2005): k counters;
// a key not counted takes the smallest counter's place and count, so any key
// heavier than total/k is sure to be counted, and an entry's count exceeds
// its true weight by at most its err. Safe for concurrent use.
type topK struct {
	mu  sync.Mutex
	k   int
	idx map[string]int // key → position in h
	h   topHeap
}

type topEntry struct {
	key    string
	weight float64
	err    float64 // the weight inherited from the key it replaced
}

func newTopK(k int) *topK {
	t := &topK{k: k, idx: make(map[string]int, k)}
	t.h.idx = t.idx
	return t
}

// add adds w to key's weight. key is copied only when it becomes an entry.
func (t *topK) add(key []byte, w float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.idx[string(key)]; ok {
		t.h.entries[i].weight += w
		heap.Fix(&t.h, i)
		return
	}
	if len(t.h.entries) < t.k {
		heap.Push(&t.h, topEntry{key: string(key), weight: w})
		return
	}
	least := t.h.entries[0]
	delete(t.idx, least.key)
	t.h.entries[0] = topEntry{key: string(key), weight: least.weight + w, err: least.weight}
	t.idx[t.h.entries[0].key] = 0
	heap.Fix(&t.h, 0)
}

// decay halves every weight; the order stays.
func (t *topK) decay() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.h.entries {
		t.h.entries[i].weight /= 2
		t.h.entries[i].err /= 2
	}
}

// top returns the n heaviest entries, heaviest first.
func (t *topK) top(n int) []topEntry {
	t.mu.Lock()
	out := append([]topEntry(nil), t.h.entries...)
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].weight != out[j].weight {
			return out[i].weight > out[j].weight
		}
		return out[i].key < out[j].key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// topHeap is a min-heap of entries by weight that keeps idx current.
type topHeap struct {
	entries []topEntry
	idx     map[string]int
}

func (h *topHeap) Len() int           { return len(h.entries) }
func (h *topHeap) Less(i, j int) bool { return h.entries[i].weight < h.entries[j].weight }
func (h *topHeap) Swap(i, j int) {
	h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
	h.idx[h.entries[i].key] = i
	h.idx[h.entries[j].key] = j
}
func (h *topHeap) Push(x any) {
	e := x.(topEntry)
	h.idx[e.key] = len(h.entries)
	h.entries = append(h.entries, e)
}
func (h *topHeap) Pop() any {
	e := h.entries[len(h.entries)-1]
	h.entries = h.entries[:len(h.entries)-1]
	delete(h.idx, e.key)
	return e
}
