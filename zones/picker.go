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

// Tracker is the optional capability of a Picker that wants to hear of
// each request it placed: Begin when it starts on an instance, End with
// its outcome when it ends. Every Begin is paired with one End.
type Tracker interface {
	Begin(in *routes.Instance)
	End(in *routes.Instance, o Outcome)
}

// RetryPicker is the optional capability of a Picker that chooses where to
// retry: an instance of d not in tried, or nil.
type RetryPicker interface {
	PickOther(d *routes.Deployment, tried []*routes.Instance) *routes.Instance
}

var (
	_ Picker      = Weighted{}
	_ Picker      = (*Balancer)(nil)
	_ Tracker     = (*Balancer)(nil)
	_ RetryPicker = (*Balancer)(nil)
)

// Weighted picks at random among d.Eligible in proportion to d.Weights,
// without regard to zones or health.
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
