package constructor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/constructor"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// The test binary is also the instance program the allocators run.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "instance" || os.Args[1] == allocator.ShimCommand) {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const (
	root = "/switchyard"
	dep  = "aaaa0001"
)

// site is a ZooKeeper, allocators in two zones (two each), and the
// stores, all real, in this process.
type site struct {
	t     *testing.T
	zk    *zktest.Ensemble
	conn  *zk.Conn
	plans *plan.Store
	reg   *registry.Registry
	table *zkstore.Store
	logs  *testutil.Buffer
	// stopAllocator stops the in-process allocator of that ID (its
	// instances keep running).
	stopAllocator map[string]func()
}

func newSite(t *testing.T, allocators int) *site {
	t.Helper()
	e := zktest.Start(t)
	s := &site{t: t, zk: e, logs: &testutil.Buffer{}, stopAllocator: map[string]func(){}}
	s.conn = zktest.Connect(t, e.Servers(), 4*time.Second)
	s.plans = plan.New(s.conn, root)
	s.reg = registry.New(s.conn, root)
	var err error
	if s.table, err = zkstore.New(s.conn, root); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := 22000 + int(time.Now().UnixNano()%3000)
	for i := range allocators {
		cfg := allocator.Config{
			ZK: e.Servers(), ID: fmt.Sprintf("host-%d", i+1), Zone: []string{"zone-a", "zone-b"}[i%2],
			CapacityBytes: 512 << 20, InstancesDir: t.TempDir(),
			PortMin: base + 100*i, PortMax: base + 100*i + 99,
			DefaultKind: allocator.Kind{Command: []string{self, "instance"}},
			Kinds:       map[string]allocator.Kind{"broken": {Command: []string{"/bin/sh", "-c", "exit 7"}}},
			Health:      allocator.HealthConfig{Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond, Healthy: 1, Unhealthy: 3, StartTimeout: 10 * time.Second},
			Restart:     allocator.RestartConfig{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, CrashLoop: 2, Window: time.Minute},
			StopGrace:   2 * time.Second, SessionTimeout: 2 * time.Second, RetryInterval: 200 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(s.logs, nil)),
		}
		a, err := allocator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { killInstances(cfg.InstancesDir) })
		s.stopAllocator[cfg.ID] = s.run(t, cfg.ID, a.Run)
	}
	testutil.Eventually(t, 10*time.Second, "allocators live", func() bool {
		vs, err := s.reg.List()
		if err != nil || len(vs) != allocators {
			return false
		}
		for _, v := range vs {
			if v.Live == nil {
				return false
			}
		}
		return true
	})
	return s
}

// run runs fn until the test ends (or the returned stop is called).
func (s *site) run(t *testing.T, name string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	}
	t.Cleanup(stop)
	return stop
}

func killInstances(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/state.json")
		if err != nil {
			continue
		}
		var st struct{ Pid int }
		if json.Unmarshal(b, &st) == nil && st.Pid > 0 {
			p, _ := os.FindProcess(st.Pid)
			p.Kill()
		}
	}
}

// constructor starts a constructor with a short retire grace.
func (s *site) constructor(id string, grace time.Duration) (*constructor.Constructor, func()) {
	c, err := constructor.New(constructor.Config{ZK: s.zk.Servers(), ID: id, RetireGrace: grace, LostGrace: time.Second,
		StartTimeout: 20 * time.Second, ConvergeTimeout: 2 * time.Second, Interval: 100 * time.Millisecond,
		SessionTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(s.logs, nil))})
	if err != nil {
		s.t.Fatal(err)
	}
	return c, s.run(s.t, id, c.Run)
}

func (s *site) apply(p *plan.Plan) int {
	s.t.Helper()
	res, err := s.plans.Apply(p)
	if err != nil {
		s.t.Fatal(err)
	}
	return res.Revision
}

// waitFinal waits until the plan's status for revision is final.
func (s *site) waitFinal(revision int, timeout time.Duration) *plan.Status {
	s.t.Helper()
	var st *plan.Status
	testutil.EventuallyErr(s.t, timeout, fmt.Sprintf("revision %d carried out", revision), func() error {
		r, err := s.plans.Read(dep)
		if err != nil {
			return err
		}
		st = r.Status
		if st == nil || st.Revision != revision || !st.State.Final() {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	return st
}

func basePlan(mem int64) *plan.Plan {
	return &plan.Plan{Deployment: dep, Kind: "es", Aliases: []string{"search"}, Zones: 2, PerZone: 1, MemoryBytes: mem}
}

// get asks an instance to describe itself.
func get(t *testing.T, addr string) map[string]any {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("instance at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("instance at %s: %s", addr, b)
	}
	return out
}

// assignments are the deployment's assignments by instance ID.
func (s *site) assignments() map[string]*registry.Assignment {
	out := map[string]*registry.Assignment{}
	vs, err := s.reg.List()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, v := range vs {
		for id, a := range v.Assignments {
			if a.Deployment == dep {
				out[id] = a
			}
		}
	}
	return out
}

// A plan creates the deployment: placed in two zones, running, routable.
// A change of its size makes a new generation, cut over, and the old one
// is removed from the table and from the allocators.
func TestPlanCreatesThenGrowsAndShrinks(t *testing.T) {
	s := newSite(t, 4)
	s.constructor("c1", 300*time.Millisecond)

	start := time.Now()
	rev := s.apply(basePlan(64 << 20))
	st := s.waitFinal(rev, 60*time.Second)
	if st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	t.Logf("plan to routable deployment: %v", time.Since(start))
	d, _, err := s.table.ReadSpec(context.Background(), dep)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 2 || d.Serving["r1"] != 100 || !slices.Equal(d.Aliases, []string{"search"}) {
		t.Fatalf("table after revision 1: %+v", d)
	}
	zones := map[string]bool{}
	for _, in := range d.Instances {
		zones[in.Zone] = true
		if rep := get(t, in.Addr); rep["instance"] != in.ID || rep["deployment"] != dep || rep["generation"] != "r1" {
			t.Errorf("instance %s answers %v", in.ID, rep)
		}
	}
	if len(zones) != 2 {
		t.Errorf("instances in zones %v; want two", zones)
	}
	old := d.Instances

	start = time.Now()
	rev = s.apply(basePlan(128 << 20))
	st = s.waitFinal(rev, 60*time.Second)
	if st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	t.Logf("size change carried out (place, start, route, cut over, drain, remove, release): %v", time.Since(start))
	t.Logf("time per step of revision %d: %s", rev, stepTimes(st, rev))
	d, _, err = s.table.ReadSpec(context.Background(), dep)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 2 || !maps1(d.Serving, "r2", 100) {
		t.Fatalf("table after revision 2: serving %v, %d instances", d.Serving, len(d.Instances))
	}
	for _, in := range d.Instances {
		if in.Generation != "r2" {
			t.Errorf("instance %s of generation %s left in the table", in.ID, in.Generation)
		}
	}
	as := s.assignments()
	for _, in := range old {
		if _, ok := as[in.ID]; ok {
			t.Errorf("old instance %s still assigned", in.ID)
		}
	}
	for id, a := range as {
		if a.Generation != "r2" || a.MemoryBytes != 128<<20 {
			t.Errorf("assignment %s: %+v", id, a)
		}
	}
	testutil.Eventually(t, 10*time.Second, "old instances stopped", func() bool {
		for _, in := range old {
			// One request: an instance that stops between two would fail
			// the second.
			resp, err := (&http.Client{Timeout: 200 * time.Millisecond}).Get("http://" + in.Addr + "/")
			if err != nil {
				continue // stopped
			}
			var ans map[string]any
			err = json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if err == nil && ans["generation"] == "r1" {
				return false
			}
		}
		return true
	})
}

func maps1(m map[string]int, k string, v int) bool { return len(m) == 1 && m[k] == v }

// A deleted plan takes its deployment out of the table and its
// instances off the allocators; a deployment that was never planned
// (written by yardctl apply) stays.
func TestDeletedPlanIsRemoved(t *testing.T) {
	s := newSite(t, 2)
	s.constructor("c1", 100*time.Millisecond)
	other := &routes.DeploymentSpec{ID: "bbbb0001", Kind: "es", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{{ID: "b1", Addr: "127.0.0.1:1", Zone: "zone-a", Generation: "blue"}}}
	if _, err := s.table.PutDeployment(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	p := basePlan(64 << 20)
	p.Zones = 2
	rev := s.apply(p)
	if st := s.waitFinal(rev, 60*time.Second); st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	d, _, _ := s.table.ReadSpec(context.Background(), dep)
	if _, err := s.plans.Delete(dep, plan.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "deployment and assignments gone", func() bool {
		_, _, err := s.table.ReadSpec(context.Background(), dep)
		return errors.Is(err, zkstore.ErrNotFound) && len(s.assignments()) == 0
	})
	testutil.Eventually(t, 10*time.Second, "instances stopped", func() bool {
		for _, in := range d.Instances {
			if c, err := net.DialTimeout("tcp", in.Addr, 200*time.Millisecond); err == nil {
				c.Close()
				return false
			}
		}
		return true
	})
	if _, _, err := s.table.ReadSpec(context.Background(), "bbbb0001"); err != nil {
		t.Errorf("the deployment without a plan: %v", err)
	}
}

// A plan that needs more memory than any allocator has fails at place,
// with the reason, and the table is untouched; one whose instances never
// run fails at start, what it added is removed, and traffic stays on the
// generation before.
func TestFailuresBeforeTheCutoverLeaveTrafficAlone(t *testing.T) {
	s := newSite(t, 4)
	s.constructor("c1", 200*time.Millisecond)
	rev := s.apply(basePlan(64 << 20))
	if st := s.waitFinal(rev, 60*time.Second); st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	before, _, _ := s.table.ReadSpec(context.Background(), dep)

	rev = s.apply(basePlan(1 << 30)) // 1 GiB instances on 512 MiB allocators
	st := s.waitFinal(rev, 30*time.Second)
	if st.State != plan.StateFailed || st.Step != "place" || !strings.Contains(st.Reason, "zone-a") || !strings.Contains(st.Reason, "1 GiB") {
		t.Errorf("revision %d: state %s, step %s, reason %q", rev, st.State, st.Step, st.Reason)
	}
	after, _, _ := s.table.ReadSpec(context.Background(), dep)
	if !sameSpec(before, after) {
		t.Errorf("the table changed: %+v -> %+v", before, after)
	}

	broken := basePlan(64 << 20)
	broken.Kind = "broken"
	rev = s.apply(broken)
	st = s.waitFinal(rev, 60*time.Second)
	if st.State != plan.StateFailed || st.Step != "start" || !strings.Contains(st.Reason, "exited with status 7") {
		t.Errorf("revision %d: state %s, step %s, reason %q", rev, st.State, st.Step, st.Reason)
	}
	after, _, _ = s.table.ReadSpec(context.Background(), dep)
	if !sameSpec(before, after) {
		t.Errorf("the table changed: %+v -> %+v", before, after)
	}
	testutil.Eventually(t, 10*time.Second, "the failed generation's assignments removed", func() bool {
		for _, a := range s.assignments() {
			if a.Generation == fmt.Sprintf("r%d", rev) {
				return false
			}
		}
		return true
	})
	for _, in := range before.Instances {
		if rep := get(t, in.Addr); rep["generation"] != "r1" {
			t.Errorf("instance %s answers %v", in.ID, rep)
		}
	}
}

func sameSpec(a, b *routes.DeploymentSpec) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// The leader stops mid-change; the standby takes over and finishes the
// change from the status it finds.
func TestStandbyResumesAChangeInFlight(t *testing.T) {
	s := newSite(t, 4)
	c1, stop1 := s.constructor("c1", 3*time.Second)
	testutil.Eventually(t, 10*time.Second, "c1 leads", c1.Leading)
	c2, _ := s.constructor("c2", 3*time.Second)
	rev := s.apply(basePlan(64 << 20))
	if st := s.waitFinal(rev, 60*time.Second); st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	rev = s.apply(basePlan(96 << 20))
	testutil.EventuallyErr(t, 60*time.Second, "the change draining", func() error {
		r, err := s.plans.Read(dep)
		if err != nil {
			return err
		}
		if r.Status == nil || r.Status.Revision != rev || r.Status.Step != "drain" {
			return fmt.Errorf("status %+v", r.Status)
		}
		return nil
	})
	stop1()
	if c2.Leading() && c1.Leading() {
		t.Fatal("two leaders")
	}
	st := s.waitFinal(rev, 60*time.Second)
	if st.State != plan.StateDone {
		t.Fatalf("revision %d after the takeover: %+v", rev, st)
	}
	if !c2.Leading() {
		t.Error("c2 does not lead after c1 stopped")
	}
	d, _, _ := s.table.ReadSpec(context.Background(), dep)
	if !maps1(d.Serving, fmt.Sprintf("r%d", rev), 100) || len(d.Instances) != 2 {
		t.Errorf("table after the takeover: %+v", d)
	}
	if !strings.Contains(s.logs.String(), "leading: carrying plans out") {
		t.Error("no leadership in the log")
	}
}

// A new generation that fails once it serves is rolled back while the
// old one drains: the previous serving map is written back, the new
// instances leave the table and the allocators, and the status says
// rolled_back with the proxies' counts.
func TestFailingNewGenerationIsRolledBack(t *testing.T) {
	s := newSite(t, 4)
	rs := &cli.RouteServerOptions{ZK: s.zk.Servers(), Root: root, Listen: "127.0.0.1:0", Name: "rs-test",
		Logger: slog.New(slog.NewTextHandler(s.logs, nil))}
	s.run(t, "route server", rs.Run)
	var rsURL string
	testutil.EventuallyErr(t, 10*time.Second, "route server registered", func() error {
		rss, err := s.table.RouteServers(context.Background())
		if err != nil || len(rss) == 0 {
			return fmt.Errorf("route servers %v, %v", rss, err)
		}
		rsURL = rss[0].URL
		return nil
	})
	s.constructor("c1", 20*time.Second)
	rev := s.apply(basePlan(64 << 20))
	if st := s.waitFinal(rev, 60*time.Second); st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	before, _, _ := s.table.ReadSpec(context.Background(), dep)
	rev = s.apply(basePlan(96 << 20))
	gen := fmt.Sprintf("r%d", rev)
	testutil.EventuallyErr(t, 60*time.Second, "the change draining", func() error {
		r, err := s.plans.Read(dep)
		if err != nil {
			return err
		}
		if r.Status == nil || r.Status.Revision != rev || r.Status.Step != "drain" {
			return fmt.Errorf("status %+v", r.Status)
		}
		return nil
	})
	// A proxy reports that the new generation fails 40 of 100 attempts.
	body, _ := json.Marshal(wire.Report{Proxy: "proxy-1", Generations: []routes.GenerationCount{
		{Deployment: dep, Generation: gen, Requests: 100, Errors: 40}}})
	resp, err := http.Post(strings.TrimRight(rsURL, "/")+wire.PathReport, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st := s.waitFinal(rev, 30*time.Second)
	if st.State != plan.StateRolledBack || !strings.Contains(st.Reason, "40 of 100 attempts failed") {
		t.Fatalf("revision %d: state %s, reason %q", rev, st.State, st.Reason)
	}
	after, _, _ := s.table.ReadSpec(context.Background(), dep)
	if !maps1(after.Serving, "r1", 100) || len(after.Instances) != len(before.Instances) {
		t.Errorf("table after the rollback: %+v", after)
	}
	for _, in := range after.Instances {
		if in.Generation != "r1" {
			t.Errorf("instance %s of %s left", in.ID, in.Generation)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the new generation's assignments removed", func() bool {
		for _, a := range s.assignments() {
			if a.Generation == gen {
				return false
			}
		}
		return true
	})
}

// The instance of an allocator that is gone is replaced in its zone,
// swapped in the table, and its assignment removed; an allocator being
// vacated has its instance moved the same way, and stops the old one.
func TestLostAndVacatedAllocatorsAreReplaced(t *testing.T) {
	s := newSite(t, 4)
	s.constructor("c1", 100*time.Millisecond)
	rev := s.apply(basePlan(64 << 20))
	st := s.waitFinal(rev, 60*time.Second)
	if st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	ids := slices.Sorted(maps.Keys(st.Instances))
	lost, vacated := ids[0], ids[1]
	lostOn, vacatedOn := st.Instances[lost], st.Instances[vacated]

	start := time.Now()
	s.stopAllocator[lostOn.Allocator]()
	replaced := func(old string, zone string) *routes.Instance {
		t.Helper()
		var got *routes.Instance
		testutil.EventuallyErr(t, 30*time.Second, old+" replaced in the table", func() error {
			d, _, err := s.table.ReadSpec(context.Background(), dep)
			if err != nil {
				return err
			}
			got = nil
			for _, in := range d.Instances {
				if in.ID == old {
					return fmt.Errorf("%s still in the table", old)
				}
				if in.ID == old+"m" {
					got = in
				}
			}
			if got == nil {
				return fmt.Errorf("no replacement of %s in %+v", old, d.Instances)
			}
			if _, ok := s.assignments()[old]; ok {
				return fmt.Errorf("%s still assigned", old)
			}
			return nil
		})
		if got.Zone != zone {
			t.Errorf("replacement of %s in %s; want its zone %s", old, got.Zone, zone)
		}
		if rep := get(t, got.Addr); rep["instance"] != got.ID || rep["generation"] != "r1" {
			t.Errorf("replacement answers %v", rep)
		}
		return got
	}
	r1 := replaced(lost, lostOn.Zone)
	t.Logf("allocator lost (grace 1s) to its instance replaced: %v", time.Since(start))
	if a := s.assignments()[r1.ID]; a == nil {
		t.Errorf("replacement %s not assigned", r1.ID)
	}

	vacatedAddr := ""
	d, _, _ := s.table.ReadSpec(context.Background(), dep)
	for _, in := range d.Instances {
		if in.ID == vacated {
			vacatedAddr = in.Addr
		}
	}
	start = time.Now()
	if err := s.reg.SetVacate(vacatedOn.Allocator); err != nil {
		t.Fatal(err)
	}
	replaced(vacated, vacatedOn.Zone)
	t.Logf("allocator vacated to its instance replaced: %v", time.Since(start))
	testutil.Eventually(t, 10*time.Second, "the vacated allocator stopped the old instance", func() bool {
		c, err := net.DialTimeout("tcp", vacatedAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if v, err := s.reg.Read(vacatedOn.Allocator); err != nil || len(v.Assignments) != 0 || !v.Maintenance {
		t.Errorf("vacated allocator: %+v, %v", v, err)
	}
}

// A rolling change replaces one zone at a time: the new generation
// carries half the weight while one of two zones is done, all of it at
// the end, and the old instances of each zone go after that zone.
func TestRollingChangeGoesZoneByZone(t *testing.T) {
	s := newSite(t, 4)
	s.constructor("c1", 700*time.Millisecond)
	p := basePlan(64 << 20)
	p.Strategy = plan.Rolling // a new deployment: made grow-and-shrink
	rev := s.apply(p)
	if st := s.waitFinal(rev, 60*time.Second); st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	seen := map[string]bool{}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			if d, _, err := s.table.ReadSpec(context.Background(), dep); err == nil {
				b, _ := json.Marshal(d.Serving)
				seen[string(b)] = true
			}
		}
	}()
	p = basePlan(96 << 20)
	p.Strategy = plan.Rolling
	rev = s.apply(p)
	st := s.waitFinal(rev, 60*time.Second)
	close(stop)
	<-watched
	if st.State != plan.StateDone {
		t.Fatalf("revision %d: %+v", rev, st)
	}
	var steps []string
	for _, h := range st.History {
		if h.Revision == rev && h.Step != "" {
			steps = append(steps, h.Step)
		}
	}
	want := []string{"place/zone-a", "start/zone-a", "route/zone-a", "cutover/zone-a", "converge/zone-a", "drain/zone-a", "remove/zone-a", "release/zone-a",
		"place/zone-b", "start/zone-b", "route/zone-b", "cutover/zone-b", "converge/zone-b", "drain/zone-b", "remove/zone-b", "release/zone-b"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %v\nwant  %v", steps, want)
	}
	if !seen[`{"r1":50,"r2":50}`] {
		t.Errorf("serving maps seen %v; want the half-way {r1:50, r2:50}", slices.Sorted(maps.Keys(seen)))
	}
	d, _, _ := s.table.ReadSpec(context.Background(), dep)
	if !maps1(d.Serving, "r2", 100) || len(d.Instances) != 2 {
		t.Fatalf("table at the end: %+v", d)
	}
	for id, a := range s.assignments() {
		if a.Generation != "r2" {
			t.Errorf("assignment %s of %s left", id, a.Generation)
		}
	}
}

// stepTimes says how long each step of revision rev took, from the
// status history: each entry is written when its step ends.
func stepTimes(st *plan.Status, rev int) string {
	var out []string
	last := st.StartedAt
	for _, h := range st.History {
		if h.Revision != rev || h.Step == "" {
			continue
		}
		if !last.IsZero() {
			out = append(out, fmt.Sprintf("%s %v", h.Step, h.At.Sub(last).Round(time.Millisecond)))
		}
		last = h.At
	}
	return strings.Join(out, ", ")
}
