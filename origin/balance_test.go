package origin

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSchedule(t *testing.T) {
	tests := []struct {
		give []int64
		want []uint32
	}{
		{give: []int64{1}, want: []uint32{0}},
		{give: []int64{1, 1, 1}, want: []uint32{0, 1, 2}},
		{give: []int64{2, 2}, want: []uint32{0, 1}},
		{give: []int64{3, 1}, want: []uint32{0, 0, 1, 0}},
		{give: []int64{5, 1, 1}, want: []uint32{0, 0, 1, 0, 2, 0, 0}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, newSchedule(tt.give), "newSchedule(%v)", tt.give)
	}
}

// testGroup returns the group of a Pool of n servers with the given weights
// (1 when weights is short) that sends no traffic.
func testGroup(t testing.TB, policy Policy, weights ...int) *group {
	t.Helper()
	var origins []Server
	for i := range max(len(weights), 1) {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		origins = append(origins, Server{URL: fmt.Sprintf("http://origin-%d.test", i), Weight: w})
	}
	return newTestPool(t, Config{Origins: origins, Balance: policy}).g
}

func uniformWeights(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// shares returns the share of n picks that each server of g got.
func shares(g *group, n int) []float64 {
	counts := make([]float64, len(g.servers))
	index := make(map[*server]int)
	for i, s := range g.servers {
		index[s] = i
	}
	for i := range n {
		key := keyHash(&url.URL{Scheme: "http", Host: "static.example.com", Path: fmt.Sprintf("/img/%d.png", i)})
		counts[index[g.pick(key, nil)]]++
	}
	for i := range counts {
		counts[i] /= float64(n)
	}
	return counts
}

func TestPolicyShares(t *testing.T) {
	tests := []struct {
		policy      Policy
		giveWeights []int
		want        []float64
		delta       float64
	}{
		{RoundRobin, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0},
		{RoundRobin, []int{3, 1}, []float64{0.75, 0.25}, 0},
		{LeastRequests, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.01},
		{LeastRequests, []int{3, 1}, []float64{0.75, 0.25}, 0.01},
		{Rendezvous, []int{1, 1, 1, 1}, []float64{0.25, 0.25, 0.25, 0.25}, 0.01},
		{Rendezvous, []int{1, 2, 1}, []float64{0.25, 0.5, 0.25}, 0.01},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.policy, tt.giveWeights), func(t *testing.T) {
			g := testGroup(t, tt.policy, tt.giveWeights...)
			got := shares(g, 60000)
			assert.InDeltaSlice(t, tt.want, got, tt.delta+1e-9, "shares of %s with weights %v", tt.policy, tt.giveWeights)
		})
	}
}

func TestPoliciesPassOverDownServers(t *testing.T) {
	for _, policy := range []Policy{RoundRobin, LeastRequests, Rendezvous} {
		t.Run(string(policy), func(t *testing.T) {
			g := testGroup(t, policy, 1, 1, 1)
			g.servers[0].checkDown.Store(true)
			g.servers[2].ejectedUntil.Store(g.now() + int64(1e12))

			got := shares(g, 3000)

			assert.Equal(t, []float64{0, 1, 0}, got, "only server 1 is up")
			g.servers[1].checkDown.Store(true)
			assert.Nil(t, g.pick(0, nil), "all down")
		})
	}
}

func TestPickSkips(t *testing.T) {
	for _, policy := range []Policy{RoundRobin, LeastRequests, Rendezvous} {
		g := testGroup(t, policy, 1, 1)
		for key := range uint64(100) {
			first := g.pick(key, nil)
			require.NotNil(t, first)
			assert.NotSame(t, first, g.pick(key, first), "%s: pick(%d, first) returned first", policy, key)
		}
		single := testGroup(t, policy)
		assert.Nil(t, single.pick(0, single.servers[0]), "%s: only server skipped", policy)
	}
}

func TestLeastRequestsAvoidsBusyServer(t *testing.T) {
	g := testGroup(t, LeastRequests, 1, 1, 1)
	g.servers[0].inflight.Store(5)
	g.servers[2].inflight.Store(1)

	got := shares(g, 3000)

	// Two distinct samples always include a server less busy than 0.
	assert.Zero(t, got[0], "shares %v", got)
	// Server 2 wins only against server 0: a third of the pairs, half the
	// time first.
	assert.InDelta(t, 1./3, got[2], 0.05, "shares %v", got)
}

func TestLeastRequestsWeighsLoad(t *testing.T) {
	g := testGroup(t, LeastRequests, 4, 1)
	g.servers[0].inflight.Store(3) // 3/4 per unit of weight
	g.servers[1].inflight.Store(1) // 1 per unit of weight

	got := shares(g, 1000)

	assert.Equal(t, []float64{1, 0}, got, "server 0 is less loaded for its weight")
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []Policy{RoundRobin, LeastRequests, Rendezvous} {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				g := testGroup(b, policy, uniformWeights(n)...)
				g.rand = rand.Uint64 // New's source, without the test's lock
				keys := make([]uint64, 1024)
				for i := range keys {
					keys[i] = mix(uint64(i), 0)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if g.pick(keys[i&1023], nil) == nil {
						b.Fatal("no server")
					}
					i++
				}
			})
		}
	}
}

func TestBalancingAtOrigins(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	weighted := []Server{{URL: a.URL, Weight: 3}, {URL: b.URL, Weight: 1}}
	tests := []struct {
		policy Policy
		give   int     // sequential requests, each for its own URL
		wantA  float64 // share of a
		delta  float64
	}{
		{RoundRobin, 40, 0.75, 0},
		{LeastRequests, 400, 0.75, 0.06}, // idle servers: a weighted draw
		{Rendezvous, 400, 0.75, 0.06},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			a.hits.Store(0)
			b.hits.Store(0)
			p := newTestPool(t, Config{Origins: weighted, Balance: tt.policy})
			home := make(map[string]string)
			for i := range tt.give {
				u := fmt.Sprintf("http://static.example.com/%d.png", i)
				_, body, err := fetch(t, p, u)
				require.NoError(t, err)
				home[u] = body
			}
			assert.InDelta(t, tt.wantA, float64(a.hits.Load())/float64(tt.give), tt.delta+1e-9, "share of a, weight 3 of 4")
			if tt.policy != Rendezvous {
				return
			}
			for u, want := range home {
				_, got, err := fetch(t, p, u)
				require.NoError(t, err)
				assert.Equal(t, want, got, "%s fetched from another server", u)
			}
		})
	}
}
