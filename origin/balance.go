package origin

import "math"

// Policy names how a Pool chooses the server for a request. Every policy
// passes over servers that are down (see HealthCheck and Ejection).
type Policy string

const (
	// RoundRobin takes the servers in turn, each as often as its weight, in
	// the smooth interleaving nginx uses (weights 5, 1, 1 give a a b a c a a).
	RoundRobin Policy = "round_robin"
	// LeastRequests samples two distinct entries of the weighted schedule at
	// random and takes the server with fewer requests in flight per unit of
	// weight, the first sample on a tie: the "power of two choices" of
	// Mitzenmacher, which avoids both herding on one idle server and a scan
	// of all of them. Idle servers share requests in proportion to weight.
	LeastRequests Policy = "least_requests"
	// Rendezvous sends each cache key (the request URL) to the server with
	// the highest weighted rendezvous hash of key and server, so each object
	// is fetched from one server, and adding or removing one of N servers
	// moves only about 1/N of the keys. A Shield always uses it.
	Rendezvous Policy = "rendezvous"
)

// Valid reports whether p names a policy ("" is not one: NewPool reads it
// as RoundRobin).
func (p Policy) Valid() bool {
	return p == RoundRobin || p == LeastRequests || p == Rendezvous
}

// pick returns an available server other than skip, chosen by the group's
// policy; key is the request's keyHash, used by Rendezvous only. It returns
// nil when no server other than skip is available. It does not allocate.
func (g *group) pick(key uint64, skip *server) *server {
	c := clock{epoch: g.epoch}
	switch g.policy {
	case RoundRobin:
		return g.scan(g.next.Add(1)-1, skip, &c)
	case LeastRequests:
		return g.pickLeastRequests(skip, &c)
	default:
		return g.pickRendezvous(key, skip, &c)
	}
}

// scan returns the first available server other than skip at or after
// position i (modulo its length) of the weighted schedule.
func (g *group) scan(i uint64, skip *server, c *clock) *server {
	n := uint64(len(g.schedule))
	i %= n
	for range n {
		s := g.servers[g.schedule[i]]
		if s != skip && s.available(c) {
			return s
		}
		if i++; i == n {
			i = 0
		}
	}
	return nil
}

// pickLeastRequests implements LeastRequests. One random number gives both
// schedule positions, each by Lemire's multiply-shift reduction of 32 bits.
func (g *group) pickLeastRequests(skip *server, c *clock) *server {
	n := uint64(len(g.schedule))
	r := g.rand()
	i := (r >> 32) * n >> 32
	j := i
	if n > 1 {
		j = (i + 1 + (r&math.MaxUint32)*(n-1)>>32) % n
	}
	a := g.scan(i, skip, c)
	if a == nil {
		return nil
	}
	b := g.scan(j, skip, c)
	// a.inflight/a.weight > b.inflight/b.weight, without division.
	if a.inflight.Load()*b.weight > b.inflight.Load()*a.weight {
		return b
	}
	return a
}

// newSchedule returns the smooth weighted round-robin sequence of server
// indexes for weights (nginx's algorithm, reduced by the weights' greatest
// common divisor): each index appears weight/gcd times, spread out. Its
// length is at most 256 times the number of servers.
func newSchedule(weights []int64) []uint32 {
	var d int64
	for _, w := range weights {
		d = gcd(d, w)
	}
	var total int64
	for _, w := range weights {
		total += w / d
	}
	current := make([]int64, len(weights))
	out := make([]uint32, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			current[i] += w / d
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, uint32(best))
	}
	return out
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
