package proxy

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

// genCounter counts the attempts to one generation of one deployment.
type genCounter struct {
	dep, gen string
	requests atomic.Uint64
	errors   atomic.Uint64
}

func (c *genCounter) add(o zones.Outcome) {
	if o == zones.OutcomeCanceled {
		return // says nothing of the instance
	}
	c.requests.Add(1)
	if o.Failure() {
		c.errors.Add(1)
	}
}

// genStats keeps per-generation counters for the deployments that have
// more than one generation, where a cutover may be under way. Counters
// live across tables (by deployment and generation), so they are
// cumulative for as long as the deployment stays multi-generation.
type genStats struct {
	mu    sync.Mutex
	byKey map[string]*genCounter // dep + "\x00" + gen
}

// build returns the instance → counter map for t, creating counters for
// new deployment generations and forgetting those t no longer has. When
// t was derived from prev (routes.Table.ChangeFrom), whose map is
// prevOut, it looks only at the deployments that changed: the cost is
// that of the change and of the multi-generation deployments (the map is
// copied), not of the table.
func (g *genStats) build(t, prev *routes.Table, prevOut map[*routes.Instance]*genCounter) map[*routes.Instance]*genCounter {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := t.ChangeFrom(prev)
	if ch == nil {
		next := map[string]*genCounter{}
		out := map[*routes.Instance]*genCounter{}
		for d := range t.All() {
			g.add(d, next, out)
		}
		g.byKey = next
		return out
	}
	next, out := maps.Clone(g.byKey), maps.Clone(prevOut)
	if next == nil {
		next = map[string]*genCounter{}
	}
	if out == nil {
		out = map[*routes.Instance]*genCounter{}
	}
	for _, d := range ch.Removed {
		for _, in := range d.Instances {
			delete(out, in)
			delete(next, genKey(d, in))
		}
	}
	for _, d := range ch.Added {
		g.add(d, next, out)
	}
	g.byKey = next
	return out
}

// add gives d's instances their counters when d has more than one
// generation, reusing g's counters (from before the table) by key.
func (g *genStats) add(d *routes.Deployment, next map[string]*genCounter, out map[*routes.Instance]*genCounter) {
	if !multiGeneration(d) {
		return
	}
	for _, in := range d.Instances {
		k := genKey(d, in)
		c := next[k]
		if c == nil {
			c = g.byKey[k]
			if c == nil {
				c = &genCounter{dep: d.ID, gen: in.Generation}
			}
			next[k] = c
		}
		out[in] = c
	}
}

func genKey(d *routes.Deployment, in *routes.Instance) string { return d.ID + "\x00" + in.Generation }

// report lists the counters, by deployment and generation.
func (g *genStats) report() []routes.GenerationCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]routes.GenerationCount, 0, len(g.byKey))
	for _, c := range g.byKey {
		out = append(out, routes.GenerationCount{Deployment: c.dep, Generation: c.gen,
			Requests: c.requests.Load(), Errors: c.errors.Load()})
	}
	slices.SortFunc(out, func(a, b routes.GenerationCount) int {
		if c := strings.Compare(a.Deployment, b.Deployment); c != 0 {
			return c
		}
		return strings.Compare(a.Generation, b.Generation)
	})
	return out
}

func multiGeneration(d *routes.Deployment) bool {
	for _, in := range d.Instances[min(1, len(d.Instances)):] {
		if in.Generation != d.Instances[0].Generation {
			return true
		}
	}
	return false
}

// GenerationReport is, for every deployment with more than one
// generation, the attempts this proxy sent to each generation and how
// many failed, counted since the proxy started. The route client sends it
// to the route servers, where cutovers watch it.
func (s *Server) GenerationReport() []routes.GenerationCount { return s.gens.report() }
