package cutover

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// fakeClock moves only when the code under test waits: After(d) moves it
// by d and fires at once.
type fakeClock struct{ now time.Time }

func newClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// fakeStore holds one deployment's serving map and counts zxids.
type fakeStore struct {
	serving map[string]int
	zxid    int64
	writes  []string
	fail    error // returned by every write when set
}

func (s *fakeStore) SetServing(ctx context.Context, id string, serving map[string]int) (int64, error) {
	return s.SetServingIf(ctx, id, nil, serving)
}

func (s *fakeStore) SetServingIf(_ context.Context, id string, expect, serving map[string]int) (int64, error) {
	if s.fail != nil {
		return 0, s.fail
	}
	if expect != nil && !maps.Equal(s.serving, expect) {
		return 0, fmt.Errorf("%w: %s: serving is %v, not %v", zkstore.ErrConflict, id, s.serving, expect)
	}
	s.zxid++
	s.serving = maps.Clone(serving)
	s.writes = append(s.writes, fmt.Sprintf("%s %v at %#x", id, serving, s.zxid))
	return s.zxid, nil
}

// fakeFleet is one route server and its proxies: each has applied the
// store's latest zxid (except those in behind, stuck at 1) and reports
// counts for green of deployment dep.
type fakeFleet struct {
	clock  *fakeClock
	store  *fakeStore
	behind map[string]bool
	counts map[string]Count // by proxy
	polls  int
	onPoll func(n int) // changes the fleet before poll n is answered
	fail   func(n int) error
}

func (f *fakeFleet) Observe(ctx context.Context, _ time.Duration) (Observation, error) {
	f.polls++
	if f.onPoll != nil {
		f.onPoll(f.polls)
	}
	if f.fail != nil {
		if err := f.fail(f.polls); err != nil {
			return Observation{}, err
		}
	}
	st := wire.Status{Name: "rs-a"}
	for _, id := range slices.Sorted(maps.Keys(f.counts)) {
		v := uint64(f.store.zxid)
		if f.behind[id] {
			v = 1
		}
		c := f.counts[id]
		st.Proxies = append(st.Proxies, wire.ProxyStatus{ID: id, Version: v})
		st.Reports = append(st.Reports, wire.ProxyReport{Proxy: id, ReportedAt: f.clock.now, Generations: []routes.GenerationCount{
			{Deployment: "dep", Generation: "blue", Requests: 999, Errors: 999},
			{Deployment: "dep", Generation: "green", Requests: c.Requests, Errors: c.Errors},
		}})
	}
	return Observation{RouteServers: 1, Statuses: []wire.Status{st}}, nil
}

// events records a Runner's events as lines.
type events []string

func (e *events) add(ev Event) {
	var s string
	switch ev := ev.(type) {
	case Waiting:
		s = fmt.Sprintf("waiting %d/%d at %#x %v", ev.Current, ev.Proxies, ev.Version, ev.Elapsed)
	case CutOver:
		s = fmt.Sprintf("cutover %s %v was %v at %#x", ev.Deployment, ev.Serving, ev.Previous, ev.Zxid)
	case Unapplied:
		s = "unapplied " + ev.Err.Error()
	case Watching:
		s = fmt.Sprintf("watching %s: %s, %.0fs of %v", ev.Generation, ev.Result.Observed(), ev.Result.ElapsedSeconds, ev.Window)
	case ReportsFailed:
		s = "reports failed " + ev.Err.Error()
	case RollingBack:
		s = fmt.Sprintf("rolling back %v at %#x: %s", ev.Serving, ev.Zxid, ev.Why)
	}
	*e = append(*e, s)
}
