package main

import (
	"net/http"
	"testing"
)

// deepHandler needs about 6 KiB of stack, as the HTTP/2 hit path does.
type deepHandler struct{}

func (deepHandler) ServeHTTP(http.ResponseWriter, *http.Request) { recurse(24) }

//go:noinline
func recurse(n int) byte {
	var frame [200]byte
	if n == 0 {
		return touch(frame[:])
	}
	return recurse(n-1) + frame[n]
}

// BenchmarkPresized: a handler on a new goroutine (as HTTP/2 runs each
// request), its stack grown as it goes or once on entry (presized).
func BenchmarkPresized(b *testing.B) {
	for _, pre := range []bool{false, true} {
		name := "grown"
		var h http.Handler = deepHandler{}
		if pre {
			name, h = "presized", presized(h)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					h.ServeHTTP(nil, nil)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
