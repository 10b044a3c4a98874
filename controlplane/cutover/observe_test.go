package cutover

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
)

func TestApplied(t *testing.T) {
	o := Observation{RouteServers: 3, Unreachable: []string{"rs-c"}, Statuses: []wire.Status{
		{Name: "rs-a", Proxies: []wire.ProxyStatus{{ID: "p2", Version: 0x10}, {ID: "p1", Version: 0x20}}},
		// rs-b saw p2 later than rs-a did: the highest counts.
		{Name: "rs-b", Proxies: []wire.ProxyStatus{{ID: "p2", Version: 0x1f}, {ID: "p3", Version: 0x5}}},
	}}
	a := o.Applied()
	if want := (Applied{"p1": 0x20, "p2": 0x1f, "p3": 0x5}); !maps.Equal(a, want) {
		t.Fatalf("Applied() = %v; want %v", a, want)
	}
	if got, want := a.Behind(0x1f), []string{"p3 (at 0x5)"}; !slices.Equal(got, want) {
		t.Errorf("Behind(0x1f) = %q; want %q", got, want)
	}
	if got, want := a.Behind(0x21), []string{"p1 (at 0x20)", "p2 (at 0x1f)", "p3 (at 0x5)"}; !slices.Equal(got, want) {
		t.Errorf("Behind(0x21) = %q; want %q", got, want)
	}
}

func TestCounts(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rep := func(proxy string, at time.Duration, gens ...routes.GenerationCount) wire.ProxyReport {
		return wire.ProxyReport{Proxy: proxy, ReportedAt: t0.Add(at), Generations: gens}
	}
	gc := func(dep, gen string, req, errs uint64) routes.GenerationCount {
		return routes.GenerationCount{Deployment: dep, Generation: gen, Requests: req, Errors: errs}
	}
	o := Observation{RouteServers: 2, Statuses: []wire.Status{
		{Name: "rs-a", Reports: []wire.ProxyReport{
			rep("p1", 2*time.Second, gc("dep", "green", 50, 5), gc("dep", "blue", 900, 900)),
			rep("p2", time.Second, gc("dep", "green", 10, 0)),
			rep("p3", time.Second, gc("other", "green", 10, 10)),
		}},
		{Name: "rs-b", Reports: []wire.ProxyReport{
			rep("p1", time.Second, gc("dep", "green", 40, 4)), // older than rs-a's
			rep("p2", 3*time.Second, gc("dep", "green", 30, 1)),
		}},
	}}
	got, err := o.Counts("dep", "green")
	if want := map[string]Count{"p1": {50, 5}, "p2": {30, 1}}; err != nil || !maps.Equal(got, want) {
		t.Errorf("Counts = %v, %v; want %v", got, err, want)
	}

	for _, c := range []struct {
		o    Observation
		want string
	}{
		{Observation{}, "no route server is registered"},
		{Observation{RouteServers: 2, Unreachable: []string{"rs-a", "rs-b"}}, "no route server answered (rs-a, rs-b)"},
	} {
		if _, err := c.o.Counts("dep", "green"); err == nil || err.Error() != c.want {
			t.Errorf("Counts of %+v: %v; want %q", c.o, err, c.want)
		}
	}
}
