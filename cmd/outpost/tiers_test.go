package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// versionedOrigin serves "<path> v<n>" for each host and path at its
// current version, with an ETag per version, and the path's first segment
// as its surrogate key. It counts the requests for each host and path.
type versionedOrigin struct {
	*httptest.Server
	mu       sync.Mutex
	versions map[string]int // by host and path
	counts   map[string]int
}

func newVersionedOrigin(t *testing.T) *versionedOrigin {
	t.Helper()
	vo := &versionedOrigin{versions: map[string]int{}, counts: map[string]int{}}
	vo.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj := r.Host + r.URL.Path
		vo.mu.Lock()
		vo.counts[obj]++
		v := max(vo.versions[obj], 1)
		vo.mu.Unlock()
		etag := fmt.Sprintf(`"%d"`, v)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", contentType(r.URL.Path))
		w.Header().Set("Etag", etag)
		w.Header().Set("Surrogate-Key", strings.Split(r.URL.Path, "/")[1])
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body(r.URL.Path, v))
	}))
	t.Cleanup(vo.Close)
	return vo
}

// body is the body of version v of path: for a style sheet, long enough
// to be compressed on the fly, so purges meet encoded variants too (Go's
// client asks for gzip).
func body(path string, v int) string {
	b := fmt.Sprintf("%s v%d", path, v)
	if strings.HasSuffix(path, ".css") {
		b += "\n" + strings.Repeat("/* padding */\n", 100)
	}
	return b
}

// contentType is what the origin says path is.
func contentType(path string) string {
	switch {
	case strings.HasSuffix(path, ".js"):
		return "text/javascript"
	case strings.HasSuffix(path, ".css"):
		return "text/css"
	}
	return "image/png"
}

// bump makes a new version of an object, as a deploy does, and returns it.
func (vo *versionedOrigin) bump(site, path string) int {
	vo.mu.Lock()
	defer vo.mu.Unlock()
	vo.versions[site+path] = max(vo.versions[site+path], 1) + 1
	return vo.versions[site+path]
}

// count returns the requests received for an object.
func (vo *versionedOrigin) count(site, path string) int {
	vo.mu.Lock()
	defer vo.mu.Unlock()
	return vo.counts[site+path]
}

// adminPurge issues a purge through a node's admin API and returns its ID
// once the API has answered: the purge is then durable in the stream.
func adminPurge(t testing.TB, tn *testNode, reqBody string) string {
	t.Helper()
	resp, err := http.Post(tn.admin+"/purge", "application/json", strings.NewReader(reqBody))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct{ ID, Warning string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, out.Warning)
	return out.ID
}

// applied reports whether the node holds the purge.
func applied(tn *testNode, id string) bool {
	for _, r := range tn.n.bans.Recent(1 << 20) {
		if r.ID == id {
			return true
		}
	}
	return false
}

// waitApplied waits until every node holds the purge.
func waitApplied(t *testing.T, id string, nodes ...*testNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if !applied(n, id) {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "purge %s never reached every node", id)
}

// get fetches url with the Host of site through a node and returns the body.
func get(t *testing.T, tn *testNode, site, path string) string {
	t.Helper()
	_, b := fetch(t, tn.url+path, "Host", site)
	return b
}

// TestFleetPurgeHoldsAcrossLaggingTiers is issue 10: a shield and an edge
// receive the fleet's purges late (a paused proxy in front of NATS). While
// they lag, an edge that has applied the purge already never answers with
// the old body, and the lagging edge fetches the shield's old copy, as it
// may; once every node has applied the purge, no node serves the old body
// — for URL, prefix, tag and host purges, hard and soft — and the purge
// cost the origin one fetch.
func TestFleetPurgeHoldsAcrossLaggingTiers(t *testing.T) {
	o := newVersionedOrigin(t)
	natsAddr, _ := runNATS(t)
	direct := busFile(t, "nats://"+natsAddr)
	proxy := newBusProxy(t, natsAddr)
	delayed := busFile(t, proxy.url())
	shield := startNode(t, "--name", "shield", "--config", delayed, "--origin", o.URL)
	edgeA := startNode(t, "--name", "edge-a", "--config", direct, "--origin", o.URL, "--parent", shield.url)
	edgeB := startNode(t, "--name", "edge-b", "--config", delayed, "--origin", o.URL, "--parent", shield.url)
	nodes := []*testNode{shield, edgeA, edgeB}

	kinds := []struct {
		name string
		req  func(site, tag string) string
	}{
		{"url", func(site, _ string) string { return fmt.Sprintf(`{"urls": ["http://%s/%s/app.css"]`, site, "s") }},
		{"prefix", func(site, _ string) string { return fmt.Sprintf(`{"prefixes": ["http://%s/s/"]`, site) }},
		{"tag", func(_, tag string) string { return fmt.Sprintf(`{"tags": [%q]`, tag) }},
		{"host", func(site, _ string) string { return fmt.Sprintf(`{"hosts": [%q]`, site) }},
	}
	for i, k := range kinds {
		for _, soft := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/soft=%v", k.name, soft), func(t *testing.T) {
				// A site of its own, so that cases do not share objects.
				site := fmt.Sprintf("site-%d-%v.example.com", i, soft)
				const path = "/s/app.css"
				get(t, edgeA, site, path) // the shield and edge A hold v1
				require.Equal(t, body(path, 1), get(t, shield, site, path))

				proxy.pause()
				v := o.bump(site, path) // the deploy: the origin changes, then the purge
				before := o.count(site, path)
				id := adminPurge(t, edgeA, k.req(site, "s")+fmt.Sprintf(`, "soft": %v}`, soft))
				require.True(t, applied(edgeA, id))
				require.False(t, applied(shield, id) || applied(edgeB, id), "delivery was held back")

				// Edge B and the shield have not applied the purge: edge
				// B, cold, gets the shield's old copy, as it may, and keeps
				// it (the bug: stamped with its own time, after the purge).
				assert.Equal(t, body(path, 1), get(t, edgeB, site, path), "edge B, lagging, through the lagging shield")
				// Edge A applied the purge: its refetch asks the lagging
				// shield for a copy no older than the purge.
				assert.Equal(t, body(path, v), get(t, edgeA, site, path), "edge A after it applied the purge")

				proxy.resume()
				waitApplied(t, id, nodes...)
				for _, n := range nodes {
					assert.Equal(t, body(path, v), get(t, n, site, path), "%s once every node applied the purge", n.n.s.name)
					assert.Equal(t, body(path, v), get(t, n, site, path), "%s, again", n.n.s.name)
				}
				assert.Equal(t, 1, o.count(site, path)-before, "origin fetches for the purge, fleet-wide")
			})
		}
	}
}

// TestFleetPurgeRandomized mixes, on a shield and three edges (the shield
// and one edge on a bus that is delayed in half the trials), version bumps
// at the origin, purges of every kind through random edges, and client
// fetches through random nodes — before the purge, while it propagates,
// and racing its arrival — and checks, once every node has applied a
// purge, that no node serves a purged object older than the purge.
// OUTPOST_TEST_SEED replays a run.
func TestFleetPurgeRandomized(t *testing.T) {
	seed := uint64(10)
	if s := os.Getenv("OUTPOST_TEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = n
	}
	trials := 150
	if testing.Short() {
		trials = 40
	}
	t.Logf("seed %d, %d trials", seed, trials)
	rng := rand.New(rand.NewPCG(seed, 1))

	o := newVersionedOrigin(t)
	natsAddr, _ := runNATS(t)
	direct := busFile(t, "nats://"+natsAddr)
	proxy := newBusProxy(t, natsAddr)
	delayed := busFile(t, proxy.url())
	shield := startNode(t, "--name", "shield", "--config", delayed, "--origin", o.URL)
	edges := []*testNode{
		startNode(t, "--name", "edge-0", "--config", direct, "--origin", o.URL, "--parent", shield.url),
		startNode(t, "--name", "edge-1", "--config", delayed, "--origin", o.URL, "--parent", shield.url),
		startNode(t, "--name", "edge-2", "--config", direct, "--origin", o.URL, "--parent", shield.url),
	}
	nodes := append([]*testNode{shield}, edges...)
	issuers := []*testNode{edges[0], edges[2]} // on the direct bus: their answer is not held back

	// Sites of 12 objects in 4 groups (a group is a path prefix and a
	// surrogate key); each trial purges on one site, so that a node is
	// often cold for an object, as an edge is for most of a large site.
	const sites = 6
	var site string
	var objects, groups []string
	pickSite := func() {
		n := rng.IntN(sites)
		site, objects, groups = fmt.Sprintf("s%d.rand.example.com", n), nil, nil
		for k := range 4 {
			g := fmt.Sprintf("s%dg%d", n, k)
			groups = append(groups, g)
			for _, f := range []string{"a.js", "b.css", "c.png"} {
				objects = append(objects, "/"+g+"/"+f)
			}
		}
	}
	version := func(p string) int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return max(o.versions[site+p], 1)
	}
	// fetchSome fetches n random objects of the site through random
	// nodes, concurrently. With lagging set (the purge is held back from
	// the shield and edge 1), half of them are objects the purge covers
	// through edge 1, often cold for them: the edge that may keep the
	// lagging shield's old copy.
	var covered []string
	fetchSome := func(n int, lagging bool) *sync.WaitGroup {
		var wg sync.WaitGroup
		for range n {
			tn := nodes[rng.IntN(len(nodes))]
			p := objects[rng.IntN(len(objects))]
			if lagging && rng.IntN(2) == 0 {
				tn, p = edges[1], covered[rng.IntN(len(covered))]
			}
			site := site
			wg.Go(func() { get(t, tn, site, p) })
		}
		return &wg
	}

	stale := 0
	var purged, originFetches int
	afterAnswer := map[int]int{} // origin fetches of a purged object after the purge's answer → objects
	for trial := range trials {
		delay := rng.IntN(2) == 0
		pickSite()
		fetchSome(rng.IntN(6), false).Wait()
		if rng.IntN(3) == 0 { // a change nobody purges yet: served until its TTL, or a later purge
			o.bump(site, objects[rng.IntN(len(objects))])
		}

		// The purge, and the objects it covers.
		g := groups[rng.IntN(len(groups))]
		p := objects[rng.IntN(len(objects))]
		var req string
		covered = nil
		switch rng.IntN(4) {
		case 0:
			req, covered = fmt.Sprintf(`"urls": ["http://%s%s"]`, site, p), []string{p}
		case 1:
			req = fmt.Sprintf(`"prefixes": ["http://%s/%s/"]`, site, g)
		case 2:
			req = fmt.Sprintf(`"tags": [%q]`, g)
		case 3:
			req, covered = fmt.Sprintf(`"hosts": [%q]`, site), objects
		}
		if covered == nil {
			for _, q := range objects {
				if strings.HasPrefix(q, "/"+g+"/") {
					covered = append(covered, q)
				}
			}
		}
		soft := rng.IntN(2) == 0
		want := map[string]int{}
		before := map[string]int{}
		for _, q := range covered {
			if rng.IntN(5) != 0 {
				o.bump(site, q) // the deploy: the origin changes, then the purge
			}
			want[q] = version(q)
			before[q] = o.count(site, q)
		}

		if delay {
			proxy.pause()
		}
		during := fetchSome(rng.IntN(6), false) // racing the purge's issue
		id := adminPurge(t, issuers[rng.IntN(len(issuers))], fmt.Sprintf(`{%s, "soft": %v}`, req, soft))
		during.Wait()
		answered := map[string]int{}
		for _, q := range covered {
			answered[q] = o.count(site, q)
		}
		fetchSome(rng.IntN(9), delay).Wait() // the purge applied on some nodes only
		if delay {
			proxy.resume()
		}
		racing := fetchSome(rng.IntN(4), false) // racing its arrival
		waitApplied(t, id, nodes...)
		racing.Wait()

		// Every node has applied the purge: no covered object older than
		// it, from any node, in any order.
		checks := make([]*testNode, len(nodes))
		copy(checks, nodes)
		rng.Shuffle(len(checks), func(i, j int) { checks[i], checks[j] = checks[j], checks[i] })
		for _, tn := range checks {
			for _, q := range covered {
				got := get(t, tn, site, q)
				var v int
				if _, err := fmt.Sscanf(strings.TrimPrefix(got, q), " v%d", &v); err != nil || v < want[q] {
					stale++
					t.Errorf("trial %d: %s served %q for %s after purge %s {%s, soft %v} (delayed %v), want v%d or newer",
						trial, tn.n.s.name, got, q, id, req, soft, delay, want[q])
				}
			}
		}
		for _, q := range covered {
			purged++
			originFetches += o.count(site, q) - before[q]
			afterAnswer[o.count(site, q)-answered[q]]++
		}
	}
	// Fetches under way when a purge is issued (its during phase) cost one
	// more: their response may predate the purge.
	t.Logf("stale serves after application: %d; origin fetches per purged object: %.3f (%d for %d); after the purge's answer: %v",
		stale, float64(originFetches)/float64(purged), originFetches, purged, afterAnswer)
	assert.Zero(t, stale)
}

// adminStatus returns a node's /status page.
func adminStatus(t *testing.T, tn *testNode) string {
	t.Helper()
	_, b := fetch(t, tn.admin+"/status")
	return b
}

// TestFleetRestartServesNothingTheReplayMayPurge is issue 10's fourth
// point: a node restarted with its disk cache served, before its replay of
// the purges it missed was done, objects the replay was about to purge.
// Until the replay is done it answers nothing from its cache: it fetches
// through (and keeps what it fetches), and says so on /status.
func TestFleetRestartServesNothingTheReplayMayPurge(t *testing.T) {
	o := newVersionedOrigin(t)
	natsAddr, _ := runNATS(t)
	proxy := newBusProxy(t, natsAddr)
	edgeA := startNode(t, "--name", "edge-a", "--config", busFile(t, "nats://"+natsAddr), "--origin", o.URL)
	bArgs := []string{"--name", "edge-b", "--config", busFile(t, proxy.url()), "--origin", o.URL, "--cache-dir", t.TempDir()}
	edgeB := startNode(t, bArgs...)
	const site = "restart.example.com"
	for _, p := range []string{"/x.js", "/y.js"} {
		require.Equal(t, body(p, 1), get(t, edgeB, site, p))
	}
	require.NoError(t, edgeB.stop(t))

	// While edge B is down: a new release of /x.js, purged fleet-wide.
	v := o.bump(site, "/x.js")
	adminPurge(t, edgeA, `{"urls": ["http://`+site+`/x.js"]}`)

	// Edge B comes back with its disk cache, but cannot replay yet.
	proxy.setReachable(false)
	edgeB = launchNode(t, bArgs...)
	require.Eventually(t, func() bool {
		resp, err := http.Get(edgeB.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 5*time.Millisecond, "edge B never listened")
	resp, _ := fetch(t, edgeB.admin+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, adminStatus(t, edgeB), "replaying the purges missed while down")
	before := o.count(site, "/y.js")
	for _, p := range []string{"/x.js", "/y.js"} {
		resp, b := fetch(t, edgeB.url+p, "Host", site)
		want := body(p, 1)
		if p == "/x.js" {
			want = body(p, v)
		}
		assert.Equal(t, want, b, "%s before the replay", p)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=bypass", "%s: fetched through, not from the cache", p)
	}
	assert.Equal(t, before+1, o.count(site, "/y.js"), "an object no purge covers is fetched through too")

	proxy.setReachable(true)
	edgeB.waitReady(t)
	assert.Contains(t, adminStatus(t, edgeB), "caught up with the fleet")
	resp, b := fetch(t, edgeB.url+"/x.js", "Host", site)
	assert.Equal(t, body("/x.js", v), b)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "edge-b; hit", "what it fetched while replaying was kept")
}
