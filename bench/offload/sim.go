package main

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/outpost-cdn/outpost/storage"
)

// simResult counts what a cache of some budget would have served.
type simResult struct {
	Policy          string
	Requests, Hits  int64
	Bytes, HitBytes int64
	OriginBytes     int64 // Bytes - HitBytes
}

func (r *simResult) record(size int64, hit bool) {
	r.Requests++
	r.Bytes += size
	if hit {
		r.Hits++
		r.HitBytes += size
	} else {
		r.OriginBytes += size
	}
}

// ObjectHitRatio and ByteHitRatio are in [0, 1].
func (r simResult) ObjectHitRatio() float64 { return ratio(r.Hits, r.Requests) }
func (r simResult) ByteHitRatio() float64   { return ratio(r.HitBytes, r.Bytes) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// simLRU replays reqs through a least-recently-used cache of capacity
// bytes that admits every object that fits.
func simLRU(reqs []request, capacity int64) simResult {
	res := simResult{Policy: "lru"}
	type entry struct{ id, size int64 }
	order := list.New() // front: most recent
	index := make(map[int64]*list.Element)
	var used int64
	for _, r := range reqs {
		if e, ok := index[r.id]; ok {
			order.MoveToFront(e)
			res.record(r.size, true)
			continue
		}
		res.record(r.size, false)
		if r.size > capacity {
			continue
		}
		for used+r.size > capacity {
			back := order.Back()
			victim := back.Value.(entry)
			order.Remove(back)
			delete(index, victim.id)
			used -= victim.size
		}
		index[r.id] = order.PushFront(entry{r.id, r.size})
		used += r.size
	}
	return res
}

// nextUses returns, for each request, the index of the next request for
// the same object, or math.MaxInt when there is none.
func nextUses(reqs []request) []int {
	next := make([]int, len(reqs))
	last := make(map[int64]int, len(reqs)/4)
	for i := len(reqs) - 1; i >= 0; i-- {
		if j, ok := last[reqs[i].id]; ok {
			next[i] = j
		} else {
			next[i] = math.MaxInt
		}
		last[reqs[i].id] = i
	}
	return next
}

// simBelady replays reqs through an offline cache of capacity bytes that
// knows the future. On a miss it makes room by evicting, among the cached
// objects and the newcomer itself (admission may say no), the object with
// the largest cost: with sizeAware, size × time to its next request
// ("Belady-size", which favours many small objects and so the object hit
// ratio), else the time to its next request alone (Belady's rule, which
// favours bytes hit). Objects never requested again go first. Neither is a
// proven optimum for objects of varying sizes (that problem is NP-hard);
// both are the usual offline references, well above any online policy.
func simBelady(reqs []request, capacity int64, sizeAware bool) simResult {
	res := simResult{Policy: "belady"}
	if sizeAware {
		res.Policy = "belady-size"
	}
	next := nextUses(reqs)
	type entry struct {
		id, size int64
		next     int
	}
	var cached []entry
	pos := make(map[int64]int) // id → index in cached
	var used int64
	cost := func(size int64, nextUse, now int) float64 {
		if nextUse == math.MaxInt {
			return math.Inf(1)
		}
		d := float64(nextUse - now)
		if sizeAware {
			d *= float64(size)
		}
		return d
	}
	for t, r := range reqs {
		if i, ok := pos[r.id]; ok {
			cached[i].next = next[t]
			res.record(r.size, true)
			continue
		}
		res.record(r.size, false)
		if r.size > capacity || next[t] == math.MaxInt {
			continue
		}
		mine := cost(r.size, next[t], t)
		admit := true
		for used+r.size > capacity {
			worst, worstCost := -1, mine
			for i, e := range cached {
				if c := cost(e.size, e.next, t); c > worstCost {
					worst, worstCost = i, c
				}
			}
			if worst < 0 {
				admit = false // the newcomer is worth least
				break
			}
			v := cached[worst]
			used -= v.size
			delete(pos, v.id)
			last := len(cached) - 1
			if worst != last {
				cached[worst] = cached[last]
				pos[cached[worst].id] = worst
			}
			cached = cached[:last]
		}
		if admit {
			pos[r.id] = len(cached)
			cached = append(cached, entry{r.id, r.size, next[t]})
			used += r.size
		}
	}
	return res
}

// simHeader is a typical stored response header, so the memory tier
// charges an entry what it would in the real binary.
var simHeader = http.Header{
	"Content-Type":   {"application/octet-stream"},
	"Cache-Control":  {"public, max-age=86400"},
	"Etag":           {`"0123456789abcdef"`},
	"Last-Modified":  {"Mon, 02 Jan 2006 15:04:05 GMT"},
	"Date":           {"Mon, 02 Jan 2006 15:04:05 GMT"},
	"Content-Length": {"20480"},
	"Accept-Ranges":  {"bytes"},
}

// simMemory replays reqs through Outpost's memory tier (storage.Memory) of
// capacity bytes, offline: a Get per request, and a Put, Write and Commit
// of a body of the object's size on each miss, as the edge does.
func simMemory(reqs []request, capacity int64) (simResult, error) {
	res := simResult{Policy: "outpost-memory"}
	m, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: capacity})
	if err != nil {
		return res, err
	}
	defer m.Close()
	ctx := context.Background()
	body := make([]byte, 256<<10)
	for _, r := range reqs {
		key := "http://bench/obj/" + strconv.FormatInt(r.id, 10)
		if o, err := m.Get(ctx, key); err == nil {
			o.Close()
			res.record(r.size, true)
			continue
		}
		res.record(r.size, false)
		w, err := m.Put(ctx, storage.Meta{Key: key, URL: key, Status: 200, Header: simHeader, Size: r.size})
		if errors.Is(err, storage.ErrTooLarge) || errors.Is(err, storage.ErrNotAdmitted) {
			continue
		} else if err != nil {
			return res, fmt.Errorf("memory tier: %w", err)
		}
		for left := r.size; left > 0; {
			k, err := w.Write(body[:min(left, int64(len(body)))])
			if err != nil {
				break
			}
			left -= int64(k)
		}
		if err := w.Commit(); err != nil && !errors.Is(err, storage.ErrNotAdmitted) && !errors.Is(err, storage.ErrTooLarge) {
			w.Close()
			return res, fmt.Errorf("memory tier: %w", err)
		}
		w.Close()
	}
	return res, nil
}
