package promreg_test

import (
	"testing"

	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegisterAllOrNone: a second component on one Registerer gets an
// error, and the first keeps its metrics; nothing of the second stays.
func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	require.NoError(t, promreg.Register(reg, "first", a))
	b2 := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	a2 := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	err := promreg.Register(reg, "second", b2, a2)
	assert.ErrorContains(t, err, "second: metrics already registered")
	require.NoError(t, promreg.Register(reg, "third", b), "b_total was unregistered again")
	assert.NoError(t, promreg.Register(nil, "none", a))
}
