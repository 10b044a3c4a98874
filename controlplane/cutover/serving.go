package cutover

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/routes"
)

// Sentinel errors. A refused change is an *Error wrapping one of them.
var (
	// ErrNoInstances: the generation has no instances in the deployment.
	ErrNoInstances = errors.New("cutover: generation has no instances")
	// ErrCannotServe: every instance of the generation is in maintenance
	// or in a zone that is down.
	ErrCannotServe = errors.New("cutover: no instance of the generation can serve")
	// ErrNoPrevious: there is no previous serving map to roll back to.
	ErrNoPrevious = errors.New("cutover: no previous serving map")
	// ErrNoChange: the deployment already serves what a watched cutover
	// would write, so there is nothing to watch.
	ErrNoChange = errors.New("cutover: serving map unchanged")
)

// Error is a refused change: one line saying why, naming the deployment
// and the generation but not the operation (callers prefix it: "cutover:
// ..."). It wraps one of the sentinel errors.
type Error struct {
	Err error // ErrNoInstances, ErrCannotServe, ErrNoPrevious or ErrNoChange
	Msg string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Target is a deployment as read before a change of its serving map.
type Target struct {
	// Deployment is as stored: its ID, serving map and instances.
	Deployment *routes.DeploymentSpec
	// PreviousServing is the serving map before the last change, which a
	// rollback writes back; empty when there is none.
	PreviousServing map[string]int
	// Zones are the store's zone states; a zone not listed is up.
	Zones map[string]routes.ZoneState
}

// Generations lists the generations that have instances, sorted.
func (t *Target) Generations() []string {
	set := map[string]bool{}
	for _, in := range t.Deployment.Instances {
		set[in.Generation] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// CanServe returns nil when an instance of gen can take traffic (not in
// maintenance, zone not down), else an *Error wrapping ErrNoInstances or
// ErrCannotServe that says why, instance by instance.
func (t *Target) CanServe(gen string) error {
	var why []string
	for _, in := range t.Deployment.Instances {
		switch {
		case in.Generation != gen:
		case in.Maintenance:
			why = append(why, in.ID+" in maintenance")
		case t.Zones[in.Zone] == routes.ZoneDown:
			why = append(why, in.ID+" in zone "+in.Zone+" which is down")
		default:
			return nil
		}
	}
	if len(why) == 0 {
		return t.noInstances(gen)
	}
	return &Error{Err: ErrCannotServe, Msg: fmt.Sprintf("generation %q of %s has no instance able to serve (%s)",
		gen, t.Deployment.ID, strings.Join(why, ", "))}
}

func (t *Target) noInstances(gen string) *Error {
	return &Error{Err: ErrNoInstances, Msg: fmt.Sprintf("generation %q has no instances in %s (generations: %s)",
		gen, t.Deployment.ID, strings.Join(t.Generations(), ", "))}
}

// WithZeros returns serving with weight 0 added for every generation with
// instances that it does not list, so that the deployment stays valid.
func (t *Target) WithZeros(serving map[string]int) map[string]int {
	out := maps.Clone(serving)
	if out == nil {
		out = map[string]int{}
	}
	for _, g := range t.Generations() {
		if _, ok := out[g]; !ok {
			out[g] = 0
		}
	}
	return out
}

// Cutover returns the serving map that sends all traffic to gen: weight
// 100, every other generation with instances 0. Check CanServe first: only
// a forced cutover writes a map that leaves no instance to serve.
func (t *Target) Cutover(gen string) map[string]int {
	return t.WithZeros(map[string]int{gen: 100})
}

// Weights returns the serving map of a split: the weights given, and 0
// for the other generations. A generation without instances is an *Error
// wrapping ErrNoInstances. The weights themselves (integers in range,
// some above 0) are checked when the map is written
// (routes.ValidateDeployment).
func (t *Target) Weights(w map[string]int) (map[string]int, error) {
	gens := t.Generations()
	for _, g := range slices.Sorted(maps.Keys(w)) {
		if !slices.Contains(gens, g) {
			return nil, t.noInstances(g)
		}
	}
	return t.WithZeros(w), nil
}

// Rollback returns the previous serving map, with 0 for generations added
// since; without one it is an *Error wrapping ErrNoPrevious.
func (t *Target) Rollback() (map[string]int, error) {
	if len(t.PreviousServing) == 0 {
		return nil, &Error{Err: ErrNoPrevious, Msg: t.Deployment.ID + " has no previous serving map"}
	}
	return t.WithZeros(t.PreviousServing), nil
}
