package cutover

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/routes/wire"
)

// Observer reads what the route servers report of the proxies.
type Observer interface {
	// Observe lists the registered route servers and asks each for its
	// status document, each within timeout. It fails only when the route
	// servers cannot be listed; one that does not answer (or answers
	// badly) is named in Unreachable.
	Observe(ctx context.Context, timeout time.Duration) (Observation, error)
}

// Observation is what the registered route servers said at one time.
type Observation struct {
	RouteServers int           // registered
	Statuses     []wire.Status // of those that answered, in the order listed
	Unreachable  []string      // the names of those that did not
}

// Applied is the table version each proxy has applied, by proxy ID.
type Applied map[string]int64

// Applied returns the proxies the route servers report, each with the
// highest version any of them saw it apply.
func (o Observation) Applied() Applied {
	a := Applied{}
	for _, st := range o.Statuses {
		for _, p := range st.Proxies {
			if cur, ok := a[p.ID]; !ok || int64(p.Version) > cur {
				a[p.ID] = int64(p.Version)
			}
		}
	}
	return a
}

// Behind lists the proxies below version, sorted by ID, each as
// "ID (at 0x…)".
func (a Applied) Behind(version int64) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(a)) {
		if a[id] < version {
			out = append(out, fmt.Sprintf("%s (at %s)", id, zxid(a[id])))
		}
	}
	return out
}

// Count is what a proxy saw of a generation: attempts, and how many of
// them failed.
type Count struct{ Requests, Errors uint64 }

// Counts returns each proxy's latest counts for generation gen of
// deployment id, from its reports (wire.ProxyReport): when two route
// servers hold a report of the same proxy, the newer one. It fails when
// no route server is registered or none answered.
func (o Observation) Counts(id, gen string) (map[string]Count, error) {
	if o.RouteServers == 0 {
		return nil, errors.New("no route server is registered")
	}
	if len(o.Statuses) == 0 {
		return nil, fmt.Errorf("no route server answered (%s)", strings.Join(o.Unreachable, ", "))
	}
	counts := map[string]Count{}
	at := map[string]time.Time{}
	for _, st := range o.Statuses {
		for _, r := range st.Reports {
			if t, ok := at[r.Proxy]; ok && !r.ReportedAt.After(t) {
				continue
			}
			for _, g := range r.Generations {
				if g.Deployment == id && g.Generation == gen {
					counts[r.Proxy], at[r.Proxy] = Count{g.Requests, g.Errors}, r.ReportedAt
				}
			}
		}
	}
	return counts, nil
}

// zxid is a version as the store's tools show it.
func zxid(z int64) string { return fmt.Sprintf("0x%x", z) }
