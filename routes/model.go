// Package routes holds the route model: the deployment spec that every
// source and store carries (DeploymentSpec, Instance, generations, zones)
// with its validation, and the immutable Table compiled from specs, which
// readers load without locking. Sources hand tables to a Sink: the routes
// file (routes/routesfile) and route servers (routes/routeclient).
package routes

import (
	"errors"
	"iter"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors. Refused input is an *Error wrapping one of them, saying
// what is wrong and where.
var (
	ErrInvalid    = errors.New("routes: invalid")
	ErrEmptyTable = errors.New("routes: empty table")
)

// ZoneState is what an operator says of a zone. A zone that is not listed is up.
type ZoneState uint8

const (
	ZoneUp ZoneState = iota
	ZoneDown
)

func (s ZoneState) String() string {
	if s == ZoneDown {
		return "down"
	}
	return "up"
}

// Deployment is a deployment as a Table serves it: its spec and what
// NewTable computes from it. A Deployment inside a Table is immutable:
// readers share it across goroutines without locking.
type Deployment struct {
	DeploymentSpec

	// AllowNets is Allow parsed; nil when Allow is empty.
	AllowNets []netip.Prefix

	// Eligible lists the instances that may get new requests: generation
	// weight > 0, not in maintenance, zone not down; in the order of
	// Instances.
	Eligible []*Instance
	// Weights[i] is the share of traffic Eligible[i] gets, in units whose
	// sum is TotalWeight: a generation's weight split evenly over its
	// eligible instances.
	Weights     []uint64
	TotalWeight uint64

	taken atomic.Bool // a table holds it: NewTableOf and WithOf copy it

	// picker is what a Picker keeps with the deployment (PickerState).
	picker atomic.Value
}

// PickerState returns what a Picker keeps with d (CompareAndSwapPickerState),
// or nil: its own state for the deployment, which a pick then finds in
// the deployment it has in hand instead of in a map of the table's
// deployments. It does not allocate, and is safe for concurrent use.
func (d *Deployment) PickerState() any { return d.picker.Load() }

// CompareAndSwapPickerState keeps next with d in place of old (nil when
// nothing is kept yet) and reports whether it did. The values kept with
// a deployment are of one concrete type, as with atomic.Value; a Picker
// that finds another's value there keeps its own elsewhere.
func (d *Deployment) CompareAndSwapPickerState(old, next any) bool {
	return d.picker.CompareAndSwap(old, next)
}

// Table is an immutable snapshot of the routing table. Build it with NewTable
// and never modify it afterwards.
type Table struct {
	// Version is set by the source: it grows with every table the source
	// accepts (a routes file Source starts at 1). 0 for a table built
	// directly.
	Version uint64
	Domain  string               // lowercase, without leading dot
	Zones   map[string]ZoneState // as listed; a zone not listed is up

	// Where and when this table came from (for the admin status page).
	Source   string
	LoadedAt time.Time

	index index   // id and "<alias>.<kind>", lowercase
	list  depList // the deployments, sorted by ID

	flatOnce sync.Once
	flat     []*Deployment // list in one slice, once Deployments asked

	seq    uint64  // tells tables apart, for ChangeFrom
	base   uint64  // the seq of the table this one was derived from (With)
	change *Change // what With changed from that table
}

// Deployments returns the deployments, sorted by ID; the caller must not
// modify the slice. A table derived from another (With) keeps them in
// chunks shared with that table, and makes the slice at the first call,
// at the cost of the table: what runs at every change uses All, After,
// Lookup or ChangeFrom instead.
func (t *Table) Deployments() []*Deployment {
	t.flatOnce.Do(func() {
		if t.flat == nil {
			t.flat = t.list.flat()
		}
	})
	return t.flat
}

// All yields the deployments in ID order.
func (t *Table) All() iter.Seq[*Deployment] { return t.list.all() }

// After returns up to limit deployments whose IDs follow id in ID order
// ("" for the first), and whether more follow them. It costs a binary
// search and the page.
func (t *Table) After(id string, limit int) (page []*Deployment, more bool) {
	return t.list.after(id, limit)
}

// GenerationCount is what one proxy saw of one generation of a deployment:
// the attempts it sent to the generation's instances and how many of them
// failed (connect error, reset, timeout, or a 5xx from the instance),
// counted since the proxy started. Proxies report these for deployments
// with more than one generation; a cutover watches the new one.
type GenerationCount struct {
	Deployment string `json:"deployment"`
	Generation string `json:"generation"`
	Requests   uint64 `json:"requests"`
	Errors     uint64 `json:"errors"`
}

// Allows reports whether a client at addr may reach d: d has no traffic
// filter, or addr is in one of its prefixes. An invalid addr (the client
// address is not known) is allowed only where there is no filter.
func (d *Deployment) Allows(addr netip.Addr) bool {
	if len(d.AllowNets) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range d.AllowNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
