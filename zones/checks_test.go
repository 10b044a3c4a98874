package zones

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
)

// These tests run real checks against loopback servers with intervals of
// milliseconds; each takes well under a second.

// backend is a loopback server that counts the checks it gets and answers
// with status (200 unless set), after delay.
type backend struct {
	srv      *httptest.Server
	status   atomic.Int64
	delay    atomic.Int64
	hits     atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	path     atomic.Pointer[string]
}

func newBackend(t *testing.T) *backend {
	be := &backend{}
	be.status.Store(200)
	be.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		be.path.Store(&p)
		// Counted strictly inside the client's wait: from the start of
		// the handler to before the response is written.
		n := be.inFlight.Add(1)
		for {
			m := be.maxIn.Load()
			if n <= m || be.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		be.hits.Add(1)
		if d := time.Duration(be.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		be.inFlight.Add(-1)
		w.WriteHeader(int(be.status.Load()))
	}))
	t.Cleanup(be.srv.Close)
	return be
}

func (be *backend) addr() string { return strings.TrimPrefix(be.srv.URL, "http://") }

// runChecks starts b.RunChecks and stops it at the end of the test.
func runChecks(t *testing.T, b *Balancer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.RunChecks(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunChecks = %v; want nil", err)
		}
	})
}

// checkWait bounds the wait for checks to change what the balancer says:
// with intervals of milliseconds it takes far less.
const checkWait = 5 * time.Second

func checkState(b *Balancer, id string) string {
	for _, x := range allStatus(b).Instances {
		if x.ID == id {
			return x.Check
		}
	}
	return ""
}

func inst(id, addr, zone string) *routes.Instance {
	return &routes.Instance{ID: id, Addr: addr, Zone: zone, Generation: "blue"}
}

func TestChecksFlipState(t *testing.T) {
	flaky, steady := newBackend(t), newBackend(t)
	b := NewBalancer(Config{Check: CheckConfig{
		Path: "/_health", Interval: 5 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 3,
	}})
	tbl, d := oneDep(t, nil, nil, []*routes.Instance{inst("i-1", flaky.addr(), "zone-a"), inst("i-2", steady.addr(), "zone-a")})
	b.Prepare(tbl)
	runChecks(t, b)

	testutil.Eventually(t, checkWait, "first passing check", func() bool { return checkState(b, "i-1") == "healthy" })
	if p := flaky.path.Load(); p == nil || *p != "/_health" {
		t.Errorf("checked path %v; want /_health", p)
	}
	flaky.status.Store(503)
	// The counter moves last, once the balancer routes by the new state.
	testutil.Eventually(t, checkWait, "unhealthy", func() bool { return checkState(b, "i-1") == "unhealthy" && b.Stats().MarkedUnhealthy > 0 })
	if s := b.Stats(); s.CheckFailures < 3 || s.MarkedUnhealthy != 1 {
		t.Errorf("stats at the flip: %+v; want ≥ 3 failures, 1 marked unhealthy", s)
	}
	if x := instStatus(t, allStatus(b), "i-1"); x.CheckError != "status 503" || x.Healthy {
		t.Errorf("status: %+v; want check error \"status 503\", not healthy", x)
	}
	for range 1000 {
		if in := b.Pick(d); in.ID != "i-2" {
			t.Fatalf("Pick = %s; want i-2 only", in.ID)
		}
	}
	flaky.status.Store(200)
	testutil.Eventually(t, checkWait, "healthy again", func() bool { return checkState(b, "i-1") == "healthy" && b.Stats().MarkedHealthy > 0 })
	if s := b.Stats(); s.MarkedHealthy != 1 {
		t.Errorf("MarkedHealthy = %d; want 1", s.MarkedHealthy)
	}
	if byInst, _ := picks(t, b, d, 1000); byInst["i-1"] == 0 {
		t.Errorf("healthy again, but not picked")
	}
}

func TestChecksTimeoutAndRefused(t *testing.T) {
	slow := newBackend(t)
	slow.delay.Store(int64(time.Second))
	closed := newBackend(t)
	closedAddr := closed.addr()
	closed.srv.Close()
	b := NewBalancer(Config{Check: CheckConfig{
		Path: "/", Interval: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, UnhealthyThreshold: 2,
	}})
	tbl, _ := oneDep(t, nil, nil, []*routes.Instance{inst("slow", slow.addr(), "zone-a"), inst("refused", closedAddr, "zone-a")})
	b.Prepare(tbl)
	runChecks(t, b)
	testutil.Eventually(t, checkWait, "both unhealthy", func() bool {
		return checkState(b, "slow") == "unhealthy" && checkState(b, "refused") == "unhealthy"
	})
	if x := instStatus(t, allStatus(b), "slow"); !strings.Contains(x.CheckError, "Timeout") && !strings.Contains(x.CheckError, "deadline") {
		t.Errorf("slow instance's check error %q; want a timeout", x.CheckError)
	}
}

func TestChecksConcurrencyBounded(t *testing.T) {
	be := newBackend(t)
	be.delay.Store(int64(10 * time.Millisecond))
	var ins []*routes.Instance
	for _, id := range []string{"i-01", "i-02", "i-03", "i-04", "i-05", "i-06", "i-07", "i-08", "i-09", "i-10", "i-11", "i-12"} {
		ins = append(ins, inst(id, be.addr(), "zone-a"))
	}
	b := NewBalancer(Config{Check: CheckConfig{Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second, Concurrency: 3}})
	tbl, _ := oneDep(t, nil, nil, ins)
	b.Prepare(tbl)
	runChecks(t, b)
	testutil.Eventually(t, checkWait, "60 checks", func() bool { return be.hits.Load() >= 60 })
	if got := be.maxIn.Load(); got != 3 {
		t.Errorf("at most %d checks in flight; want exactly 3 (the bound, reached)", got)
	}
}

func TestChecksFollowTable(t *testing.T) {
	a, bb, c := newBackend(t), newBackend(t), newBackend(t)
	bal := NewBalancer(Config{Check: CheckConfig{Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second, UnhealthyThreshold: 1}})
	t1, _ := oneDep(t, nil, nil, []*routes.Instance{inst("a", a.addr(), "zone-a"), inst("b", bb.addr(), "zone-a")})
	bal.Prepare(t1)
	runChecks(t, bal)
	testutil.Eventually(t, checkWait, "a and b checked", func() bool { return a.hits.Load() > 0 && bb.hits.Load() > 0 })

	bb.status.Store(500)
	testutil.Eventually(t, checkWait, "b unhealthy", func() bool { return checkState(bal, "b") == "unhealthy" })
	// a leaves, c arrives; b stays and keeps its state.
	t2, _ := oneDep(t, nil, nil, []*routes.Instance{inst("b", bb.addr(), "zone-a"), inst("c", c.addr(), "zone-a")})
	bal.Prepare(t2)
	if got := checkState(bal, "b"); got != "unhealthy" {
		t.Errorf("b after reload: %q; want unhealthy", got)
	}
	testutil.Eventually(t, checkWait, "c checked", func() bool { return c.hits.Load() > 0 })
	// A check of a in flight at the reload ends: it is cancelled, or gives
	// up after the 1s Timeout, though a loaded machine can be late with
	// either.
	time.Sleep(2 * time.Second)
	before := a.hits.Load()
	time.Sleep(50 * time.Millisecond) // ten intervals
	if after := a.hits.Load(); after != before {
		t.Errorf("removed instance still checked: %d more checks", after-before)
	}
}

func TestRunChecksConfig(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := NewBalancer(Config{}).RunChecks(ctx); err != nil {
		t.Errorf("RunChecks without a path = %v; want nil at once", err)
	}
	err := NewBalancer(Config{Check: CheckConfig{Path: "_health"}}).RunChecks(ctx)
	if !errors.Is(err, ErrConfig) {
		t.Errorf("RunChecks with path without / = %v; want ErrConfig", err)
	}
}

// When checks stop, nothing stays marked unhealthy by them.
func TestRunChecksStopResets(t *testing.T) {
	be := newBackend(t)
	be.status.Store(500)
	b := NewBalancer(Config{Check: CheckConfig{Path: "/", Interval: 5 * time.Millisecond, Timeout: time.Second, UnhealthyThreshold: 1}})
	tbl, d := oneDep(t, nil, nil, []*routes.Instance{inst("i-1", be.addr(), "zone-a")})
	b.Prepare(tbl)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.RunChecks(ctx) }()
	// The counter moves last, once the balancer routes by the new state.
	testutil.Eventually(t, checkWait, "unhealthy", func() bool { return checkState(b, "i-1") == "unhealthy" && b.Stats().MarkedUnhealthy > 0 })
	cancel()
	wg.Wait()
	if got := checkState(b, "i-1"); got != "unknown" {
		t.Errorf("after RunChecks returned: %q; want unknown", got)
	}
	if in := b.Pick(d); in == nil || b.Stats().PanicPicks != 0 {
		t.Errorf("Pick = %v, panic picks %d; want i-1, healthy again", in, b.Stats().PanicPicks)
	}
}
