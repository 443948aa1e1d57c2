package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes parseSize accepts (DESIGN: B, KiB, MiB, GiB,
// KB, MB, GB; TiB and TB too), matched without regard to case.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseSize parses a byte size such as "256MiB", "1.5GB" or "4096".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num, mult := t, 1.0
	lower := strings.ToLower(t)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eE+xXpP_") {
		return 0, fmt.Errorf("bad size %q (want a number with B, KiB, MiB, GiB, KB, MB or GB)", s)
	}
	b := v * mult
	if b < 0 || math.IsNaN(b) || b > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad size %q: out of range", s)
	}
	return int64(b), nil
}

// formatSize renders bytes in the largest binary unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
