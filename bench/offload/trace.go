package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A trace is a sequence of requests for objects of fixed sizes. Object IDs
// below traceSpec.Objects are the catalogue that popularity draws from;
// one-hit wonders get IDs above it, each used once.
type request struct {
	id   int64
	size int64
}

// traceSpec describes a synthetic CDN trace. The zero value of a field
// takes the default noted beside it.
type traceSpec struct {
	Kind     string  // "zipf" (steady), "ohw" (one-hit wonders mixed in), "shift" (hot set re-drawn)
	Requests int     // requests in the trace; 200,000
	Objects  int     // catalogue size; 20,000
	Alpha    float64 // Zipf exponent; 0.9
	OHW      float64 // "ohw": share of requests for objects asked once; 0.3
	ShiftAt  int     // "shift": requests between re-draws of the hot set; 40,000
	Median   int64   // median object size; 20 KiB
	Sigma    float64 // log-normal shape (standard deviation of ln size); 1.5
	MinSize  int64   // smallest object; 256 B
	MaxSize  int64   // largest object; 8 MiB
	Seed     uint64  // the generator's seed; 1
}

func (s traceSpec) withDefaults() traceSpec {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.Requests, 200_000)
	def(&s.Objects, 20_000)
	def(&s.ShiftAt, 40_000)
	if s.Kind == "" {
		s.Kind = "zipf"
	}
	if s.Alpha == 0 {
		s.Alpha = 0.9
	}
	if s.OHW == 0 {
		s.OHW = 0.3
	}
	if s.Median == 0 {
		s.Median = 20 << 10
	}
	if s.Sigma == 0 {
		s.Sigma = 1.5
	}
	if s.MinSize == 0 {
		s.MinSize = 256
	}
	if s.MaxSize == 0 {
		s.MaxSize = 8 << 20
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	return s
}

func (s traceSpec) validate() error {
	switch {
	case s.Kind != "zipf" && s.Kind != "ohw" && s.Kind != "shift":
		return fmt.Errorf("trace kind %q: want zipf, ohw or shift", s.Kind)
	case s.Requests < 0 || s.Objects < 1 || s.ShiftAt < 1:
		return errors.New("trace: requests, objects and shift interval must be positive")
	case s.Alpha <= 0 || s.OHW < 0 || s.OHW >= 1 || s.Sigma < 0:
		return errors.New("trace: alpha must be positive, ohw in [0, 1), sigma not negative")
	case s.MinSize < 1 || s.MaxSize < s.MinSize || s.Median < s.MinSize || s.Median > s.MaxSize:
		return errors.New("trace: want 1 <= min <= median <= max size")
	}
	return nil
}

// generate returns the trace s describes. The same spec gives the same
// trace on every machine (math/rand/v2's PCG is specified).
func generate(s traceSpec) ([]request, error) {
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x6f7574706f7374)) // "outpost"
	size := func() int64 {
		v := float64(s.Median) * math.Exp(s.Sigma*rng.NormFloat64())
		return min(max(int64(v), s.MinSize), s.MaxSize)
	}
	sizes := make([]int64, s.Objects)
	for i := range sizes {
		sizes[i] = size()
	}
	z := newZipf(s.Objects, s.Alpha)
	// rank → object: a permutation, so that popularity and size are
	// independent, re-drawn at every shift.
	perm := rng.Perm(s.Objects)
	next := int64(s.Objects) // the next one-hit wonder's id
	out := make([]request, 0, s.Requests)
	for i := range s.Requests {
		if s.Kind == "shift" && i > 0 && i%s.ShiftAt == 0 {
			perm = rng.Perm(s.Objects)
		}
		if s.Kind == "ohw" && rng.Float64() < s.OHW {
			out = append(out, request{id: next, size: size()})
			next++
			continue
		}
		id := perm[z.rank(rng.Float64())]
		out = append(out, request{id: int64(id), size: sizes[id]})
	}
	return out, nil
}

// zipf draws ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^alpha, for any alpha > 0
// (math/rand's Zipf needs alpha > 1), by inverting the cumulative sums.
type zipf struct{ cdf []float64 }

func newZipf(n int, alpha float64) *zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += math.Pow(float64(k+1), -alpha)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &zipf{cdf: cdf}
}

// rank maps u, uniform in [0, 1), to a rank.
func (z *zipf) rank(u float64) int {
	return min(sort.SearchFloat64s(z.cdf, u), len(z.cdf)-1)
}

// writeTrace writes one request per line: the object's id and size.
func writeTrace(w io.Writer, reqs []request) error {
	bw := bufio.NewWriter(w)
	for _, r := range reqs {
		bw.WriteString(strconv.FormatInt(r.id, 10))
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatInt(r.size, 10))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// readTrace reads what writeTrace wrote. An object must keep its size.
func readTrace(r io.Reader) ([]request, error) {
	var out []request
	sizes := make(map[int64]int64)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("trace line %d: want \"id size\", got %q", line, sc.Text())
		}
		id, err1 := strconv.ParseInt(f[0], 10, 64)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil || id < 0 || size < 0 {
			return nil, fmt.Errorf("trace line %d: bad id or size in %q", line, sc.Text())
		}
		if was, ok := sizes[id]; ok && was != size {
			return nil, fmt.Errorf("trace line %d: object %d was %d bytes, now %d", line, id, was, size)
		}
		sizes[id] = size
		out = append(out, request{id: id, size: size})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	return out, nil
}

// traceStats summarizes a trace for the report.
type traceStats struct {
	Requests, Objects    int
	Bytes, UniqueBytes   int64
	MedianSize, MeanSize int64
	MaxSize              int64
	OneHit               int // objects asked for once
}

func statsOf(reqs []request) traceStats {
	st := traceStats{Requests: len(reqs)}
	count := make(map[int64]int)
	var sizes []int64
	for _, r := range reqs {
		st.Bytes += r.size
		if count[r.id] == 0 {
			st.UniqueBytes += r.size
			sizes = append(sizes, r.size)
			st.MaxSize = max(st.MaxSize, r.size)
		}
		count[r.id]++
	}
	st.Objects = len(count)
	for _, c := range count {
		if c == 1 {
			st.OneHit++
		}
	}
	if len(sizes) > 0 {
		slices.Sort(sizes)
		st.MedianSize = sizes[len(sizes)/2]
		st.MeanSize = st.UniqueBytes / int64(len(sizes))
	}
	return st
}
