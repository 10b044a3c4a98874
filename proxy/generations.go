package proxy

import (
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
// new deployment generations and forgetting those t no longer has.
func (g *genStats) build(t *routes.Table) map[*routes.Instance]*genCounter {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := map[string]*genCounter{}
	out := map[*routes.Instance]*genCounter{}
	for _, d := range t.Deployments {
		if !multiGeneration(d) {
			continue
		}
		for _, in := range d.Instances {
			k := d.ID + "\x00" + in.Generation
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
	g.byKey = next
	return out
}

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
