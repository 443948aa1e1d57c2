package origin

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// served returns the names of the origins that served n requests through rt.
func served(t *testing.T, rt http.RoundTripper, n int) map[string]int {
	t.Helper()
	out := make(map[string]int)
	for range n {
		status, body, err := fetch(t, rt, "http://static.example.com/a.png")
		require.NoError(t, err)
		out[body+" "+http.StatusText(status)]++
	}
	return out
}

func TestActiveChecksTakeServerDownAndBack(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		p := newTestPool(t, Config{
			Origins: servers(a, b),
			Health:  HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Fall: 3, Rise: 2},
			Logger:  logs.logger(),
		})
		synctest.Wait() // the first checks, at once
		require.Equal(t, int64(1), b.checks.Load())

		b.sick.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.True(t, p.Servers()[1].Up, "b up after two failed checks of three")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.False(t, p.Servers()[1].Up, "b down after three failed checks")
		assert.True(t, p.Servers()[1].CheckDown)

		assert.Equal(t, map[string]int{"a OK": 4}, served(t, p, 4), "no traffic to b")
		closeIdle(p.g)

		b.sick.Store(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.False(t, p.Servers()[1].Up, "b down after one passed check of two")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.True(t, p.Servers()[1].Up, "b up after two passed checks")

		assert.Equal(t, map[string]int{"a OK": 2, "b OK": 2}, served(t, p, 4), "traffic to b again")
		closeIdle(p.g)
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, 1, logs.count("server down"), "logs:\n%s", logs.buf.String())
		assert.Equal(t, 1, logs.count("server up"), "logs:\n%s", logs.buf.String())
		assert.Equal(t, int64(18), b.checks.Load(), "one check every 5s, from 0s to 85s")

		require.NoError(t, p.Close())
		checks := b.checks.Load()
		time.Sleep(time.Minute)
		assert.Equal(t, checks, b.checks.Load(), "checks after Close")
	})
}

func TestHealthCheckRequest(t *testing.T) {
	o := newOrigin(t, "o")
	got := make(chan *http.Request, 1)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(http.StatusNoContent)
	})
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, Config{
			Origins:    servers(o),
			PathPrefix: "/static",
			Health:     HealthCheck{Path: "/ping?deep=1", Host: "health.example.com", Status: http.StatusNoContent},
		})
		synctest.Wait()
		r := <-got
		assert.Equal(t, "/ping?deep=1", r.RequestURI, "no path prefix")
		assert.Equal(t, "health.example.com", r.Host)
		assert.Equal(t, "outpost-health-check", r.UserAgent())
		assert.True(t, p.Servers()[0].Up)
	})
}

func TestUnexpectedHealthStatusFails(t *testing.T) {
	o := newOrigin(t, "o")
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, Config{
			Origins: servers(o),
			Health:  HealthCheck{Path: "/healthz", Status: http.StatusNoContent, Interval: time.Second, Fall: 1},
		})
		synctest.Wait()
		st := p.Servers()[0]
		assert.True(t, st.CheckDown, "200 when 204 is expected")
		assert.Equal(t, time.Now(), st.LastFailure)
	})
}

func TestPassiveEjectionBacksOffAndReturns(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	b.status.Store(http.StatusServiceUnavailable)
	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		p := newTestPool(t, Config{
			Origins:  servers(a, b),
			Ejection: Ejection{Failures: 2, Ratio: -1, Backoff: 10 * time.Second, MaxBackoff: 25 * time.Second},
			Logger:   logs.logger(),
		})
		start := time.Now()

		assert.Equal(t, map[string]int{"a OK": 2, "b Service Unavailable": 2}, served(t, p, 4), "a 503 is a response")
		assert.Equal(t, start.Add(10*time.Second), p.Servers()[1].EjectedUntil, "ejected after two failures")
		assert.Equal(t, map[string]int{"a OK": 6}, served(t, p, 6), "no traffic to ejected b")

		closeIdle(p.g)
		time.Sleep(10 * time.Second)
		assert.True(t, p.Servers()[1].Up, "on probation")
		assert.Equal(t, map[string]int{"a OK": 1, "b Service Unavailable": 1}, served(t, p, 2))
		assert.Equal(t, time.Now().Add(20*time.Second), p.Servers()[1].EjectedUntil, "one failure on probation ejects for twice as long")

		closeIdle(p.g)
		time.Sleep(20 * time.Second)
		served(t, p, 2)
		assert.Equal(t, time.Now().Add(25*time.Second), p.Servers()[1].EjectedUntil, "back-off capped")

		b.status.Store(0)
		closeIdle(p.g)
		time.Sleep(25 * time.Second)
		assert.Equal(t, map[string]int{"a OK": 2, "b OK": 2}, served(t, p, 4), "b back")
		st := p.Servers()[1]
		assert.True(t, st.EjectedUntil.IsZero())
		assert.Equal(t, uint64(3), st.Ejections)
		assert.Equal(t, 3, logs.count("server ejected"))
		assert.Equal(t, 1, logs.count("server returned"))

		// Long after its return, a new ejection starts the back-off over.
		b.status.Store(http.StatusBadGateway)
		closeIdle(p.g)
		time.Sleep(time.Hour)
		served(t, p, 4)
		assert.Equal(t, time.Now().Add(10*time.Second), p.Servers()[1].EjectedUntil)
		closeIdle(p.g)
	})
}

func TestFailureRatioEjects(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	var n int
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if n++; n%2 == 0 { // every other request fails: never two in a row
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, Config{
			Origins:  servers(a, b),
			Ejection: Ejection{Failures: 2, Ratio: 0.5, MinRequests: 10, Window: time.Minute},
		})

		served(t, p, 18) // nine to b, four of them failed
		require.True(t, p.Servers()[1].Up)
		served(t, p, 2) // the tenth to b fails: five of ten

		assert.False(t, p.Servers()[1].Up, "half the requests in the window failed")
		closeIdle(p.g)
	})
}

func TestWindowForgetsOldFailures(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	b.status.Store(http.StatusBadGateway)
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, Config{
			Origins:  servers(a, b),
			Ejection: Ejection{Failures: -1, Ratio: 0.5, MinRequests: 4, Window: 10 * time.Second},
		})
		served(t, p, 6) // three failures at b
		closeIdle(p.g)
		time.Sleep(10 * time.Second)
		b.status.Store(0)
		served(t, p, 2) // a success at b, in a new window

		assert.True(t, p.Servers()[1].Up, "failures of the last window ejected b")
		closeIdle(p.g)
	})
}
