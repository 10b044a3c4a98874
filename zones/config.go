package zones

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// ErrConfig is wrapped by the errors of an invalid Config.
var ErrConfig = errors.New("zones: invalid config")

// Overprovisioning is Envoy's overprovisioning factor: a zone with at
// least 1/1.4 of its capacity healthy keeps all of its local traffic.
const Overprovisioning = 1.4

// Config configures a Balancer. The zero value balances by weight over all
// zones, with passive health on and active checks off.
type Config struct {
	// LocalZone is the proxy's own zone, preferred while it has enough
	// healthy capacity. "" prefers no zone.
	LocalZone string
	// PanicThreshold is the healthy share (by weight) of a deployment's
	// eligible instances under which health is ignored. 0 means 0.5; a
	// negative value disables panic mode.
	PanicThreshold float64
	// ConsecutiveFailures in a row eject an instance. 0 means 5; a
	// negative value disables ejection.
	ConsecutiveFailures int
	// BaseEjection is how long a first ejection lasts; the n-th lasts n
	// times as long. Default 30s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection. Default 5m (and never under
	// BaseEjection).
	MaxEjection time.Duration
	// MaxEjectedPercent bounds the share of a deployment's eligible
	// instances ejected at once (instances failing active checks do not
	// count). 0 means 50; above 100 means 100.
	MaxEjectedPercent int
	// Check configures active health checks (off by default).
	Check CheckConfig
	// Clock tells the time. nil: time.Now.
	Clock func() time.Time
	// Rand returns uniformly random 64-bit numbers. Picks and active
	// checks call it from many goroutines, so it must be safe for
	// concurrent use unless a test calls from one. nil: math/rand/v2's
	// Uint64.
	Rand func() uint64
}

// CheckConfig configures active health checks.
type CheckConfig struct {
	// Path is requested with GET on every instance, e.g. "/_health" or
	// "/". "" disables active checks.
	Path string
	// Interval between two checks of an instance, ±10%. Default 10s.
	Interval time.Duration
	// Timeout of one check. Default 2s. The next check of the instance
	// starts an Interval after this one ended, so checks never overlap.
	Timeout time.Duration
	// HealthyThreshold passes in a row make an unhealthy instance healthy.
	// Default 2.
	HealthyThreshold int
	// UnhealthyThreshold failures in a row make an instance unhealthy.
	// Default 3.
	UnhealthyThreshold int
	// Concurrency bounds the checks in flight. Default 16.
	Concurrency int
}

// Validate reports a Config that cannot work, wrapping ErrConfig.
func (c Config) Validate() error {
	if p := c.Check.Path; p != "" && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: check path %q does not start with /", ErrConfig, p)
	}
	if c.PanicThreshold > 1 {
		return fmt.Errorf("%w: panic threshold %v is over 1", ErrConfig, c.PanicThreshold)
	}
	return nil
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	if c.PanicThreshold == 0 {
		c.PanicThreshold = 0.5
	}
	defInt(&c.ConsecutiveFailures, 5)
	def(&c.BaseEjection, 30*time.Second)
	def(&c.MaxEjection, 5*time.Minute)
	if c.MaxEjection < c.BaseEjection {
		c.MaxEjection = c.BaseEjection
	}
	if c.MaxEjectedPercent <= 0 {
		c.MaxEjectedPercent = 50
	}
	if c.MaxEjectedPercent > 100 {
		c.MaxEjectedPercent = 100
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Uint64
	}
	k := &c.Check
	def(&k.Interval, 10*time.Second)
	def(&k.Timeout, 2*time.Second)
	if k.HealthyThreshold <= 0 {
		k.HealthyThreshold = 2
	}
	if k.UnhealthyThreshold <= 0 {
		k.UnhealthyThreshold = 3
	}
	if k.Concurrency <= 0 {
		k.Concurrency = 16
	}
}
