// Package promreg holds the one way Outpost's packages register their
// Prometheus collectors: all or none, with an error naming who registered
// (never a panic: a second component on the same Registerer is a
// configuration error its constructor reports).
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers cs with reg, all or none: when one fails, those
// already registered are unregistered again. who names the component for
// the error. A nil reg registers nothing.
func Register(reg prometheus.Registerer, who string, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("%s: metrics already registered (a second one on this Registerer?): %w", who, err)
			}
			return fmt.Errorf("%s: register metrics: %w", who, err)
		}
	}
	return nil
}

// Unregister removes cs from reg; a nil reg does nothing.
func Unregister(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.Unregister(c)
	}
}
