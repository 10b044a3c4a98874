package zones

import (
	"context"
	"math/rand/v2"

	"github.com/switchyard/switchyard/routes"
)

// Picker is the proxy's choice of instances: the one interface the
// request path asks of a balancer. Implementations are safe for
// concurrent use; Pick, PickOther, Begin and End run on every request and
// must not allocate.
type Picker interface {
	// Pick chooses an instance of d for a new request, or nil when none
	// can take it.
	Pick(d *routes.Deployment) *routes.Instance
	// PickOther chooses where to retry a request of d that failed on the
	// tried instances: one not tried, in a zone none of them is in when
	// there is one, else in any zone; nil when there is none.
	PickOther(d *routes.Deployment, tried []*routes.Instance) *routes.Instance
	// Prepare sees each table before any request can: a picker that
	// keeps state per deployment indexes it here.
	Prepare(t *routes.Table)
	// Begin and End bracket each attempt on an instance: Begin when it
	// starts, End with its outcome when it ends (for a response with a
	// body, when the body has been sent). Every Begin has one End. d is
	// the deployment that Pick or PickOther gave in for.
	Begin(d *routes.Deployment, in *routes.Instance)
	End(d *routes.Deployment, in *routes.Instance, o Outcome)
}

// Checker is a picker's background work: RunChecks runs active health
// checks until ctx ends, and returns nil at once when none are set up.
type Checker interface {
	RunChecks(ctx context.Context) error
}

// Reporter reports a picker's counters (metrics) and state (the admin
// listener's /status): Status summarizes the zones and the unhealthy
// deployments, and details the instances of the deployments in page only,
// so that its cost follows the page and what is unhealthy, not the table.
type Reporter interface {
	Stats() Stats
	Status(page []*routes.Deployment) Status
}

// AddrIndex is a picker that knows the addresses of the table it last
// prepared: Serves reports whether an instance at addr is eligible in
// some deployment of it. The proxy asks it which instances leave service
// when a table changes, instead of keeping a count of every address.
type AddrIndex interface {
	Serves(addr string) bool
}

var (
	_ AddrIndex = (*Balancer)(nil)
	_ Picker    = Weighted{}
	_ Picker    = (*Balancer)(nil)
	_ Checker   = (*Balancer)(nil)
	_ Reporter  = (*Balancer)(nil)
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

// PickOther implements Picker: the first eligible instance of d not in
// tried, in a zone not tried when there is one.
func (Weighted) PickOther(d *routes.Deployment, tried []*routes.Instance) *routes.Instance {
	var sameZone *routes.Instance
	for _, in := range d.Eligible {
		if triedIn(tried, in) {
			continue
		}
		if !zoneTried(tried, in.Zone) {
			return in
		}
		if sameZone == nil {
			sameZone = in
		}
	}
	return sameZone
}

// Prepare implements Picker; Weighted keeps no state.
func (Weighted) Prepare(*routes.Table) {}

// Begin implements Picker; Weighted keeps no state.
func (Weighted) Begin(*routes.Deployment, *routes.Instance) {}

// End implements Picker; Weighted keeps no state.
func (Weighted) End(*routes.Deployment, *routes.Instance, Outcome) {}

// triedIn reports whether in is one of tried: the same instance, or one
// with its ID and address (from an earlier table).
func triedIn(tried []*routes.Instance, in *routes.Instance) bool {
	for _, t := range tried {
		if t != nil && (t == in || (t.ID == in.ID && t.Addr == in.Addr)) {
			return true
		}
	}
	return false
}

func zoneTried(tried []*routes.Instance, zone string) bool {
	for _, t := range tried {
		if t != nil && t.Zone == zone {
			return true
		}
	}
	return false
}
