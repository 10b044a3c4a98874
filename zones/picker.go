package zones

import (
	"math/rand/v2"

	"github.com/switchyard/switchyard/routes"
)

// Picker chooses an instance of d for a new request, or nil when none can
// take it. Implementations are safe for concurrent use and must not
// allocate.
type Picker interface {
	Pick(d *routes.Deployment) *routes.Instance
}

// Weighted picks at random among d.Eligible in proportion to d.Weights.
type Weighted struct{}

// Pick implements Picker.
func (Weighted) Pick(d *routes.Deployment) *routes.Instance {
	n := len(d.Eligible)
	switch {
	case n == 0 || d.TotalWeight == 0:
		return nil
	case n == 1:
		return d.Eligible[0]
	}
	r := rand.Uint64N(d.TotalWeight)
	for i, w := range d.Weights {
		if r < w {
			return d.Eligible[i]
		}
		r -= w
	}
	return d.Eligible[n-1]
}
