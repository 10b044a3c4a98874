//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/loadtest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// The constructor tests run the whole control plane as processes:
// ZooKeeper, a route server, three proxies over it, four `switchyard
// allocator` processes on loopback (zone-a and zone-b, two each, instances
// unconfined) and two `switchyard constructor` processes, one leading.
// Plans are applied with yardctl; requests go through the proxies, and
// every one of them is counted.

const (
	csDep      = "cccc0001" // the deployment carried through every change
	csOther    = "cccc0002" // the deployment whose new generation never runs
	csMiB      = int64(1) << 20
	csGrace    = 3 * time.Second // the constructors' --retire-grace
	csLost     = 2 * time.Second // the constructors' --lost-grace
	csElection = allocRoot + "/constructor/election"
	csWait     = "90s" // bound of every yardctl --wait
)

// csSite is the control plane and the data path, all processes.
type csSite struct {
	t       *testing.T
	rp      *routePath
	conn    *zk.Conn
	plans   *plan.Store
	reg     *registry.Registry
	table   *zkstore.Store
	proxies []*proc
	allocs  []*csProc
	cons    []*csProc
	files   string // plan files and the kinds file
}

// csProc is an allocator or a constructor process.
type csProc struct {
	id   string
	dir  string // an allocator's --instances-dir
	role string // "allocator" or "constructor"
	args []string
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{} // closed when cmd has exited
}

func (p *csProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits (bounded) for the end.
func (p *csProc) kill(t *testing.T) {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s still runs 10s after SIGKILL", p.id)
	}
}

// startCSite starts the site: ZooKeeper with the table's domain, a route
// server, three proxies, four allocators and two constructors (c1 leads
// when the site is ready).
func startCSite(t *testing.T) *csSite {
	t.Helper()
	s := &csSite{t: t, rp: newRoutePath(t, 1), files: t.TempDir()}
	// Runs before ZooKeeper stops (cleanups run last first), after the
	// proxies and route server: constructors, then allocators, then the
	// instances, which outlive their allocator by design.
	t.Cleanup(s.cleanup)
	// The table's domain, with one deployment that has nothing to do with
	// the plans.
	s.rp.apply("127.0.0.1:1")
	s.conn = zktest.Connect(t, s.rp.zk.Servers(), 4*time.Second)
	s.plans = plan.New(s.conn, allocRoot)
	s.reg = registry.New(s.conn, allocRoot)
	var err error
	if s.table, err = zkstore.New(s.conn, allocRoot); err != nil {
		t.Fatal(err)
	}
	s.rp.startRouteServer("rs1")
	for i := range 3 {
		s.proxies = append(s.proxies, startProxyArgs(t, "--route-servers", s.rp.rsURLs(),
			"--proxy-id", fmt.Sprintf("p%d", i+1), "--cache-dir", t.TempDir()))
	}

	kinds := filepath.Join(s.files, "kinds.yaml")
	if err := os.WriteFile(kinds, []byte("broken:\n  command: [\"/bin/sh\", \"-c\", \"exit 7\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := 27000 + 100*rand.IntN(40)
	for i := range 4 {
		a := &csProc{id: fmt.Sprintf("host-%d", i+1), dir: t.TempDir()}
		s.allocs = append(s.allocs, a)
		s.start(a, "allocator", "--zk", s.rp.zkFlag(), "--id", a.id, "--zone", []string{"zone-a", "zone-b"}[i%2],
			"--capacity", "1GiB", "--instances-dir", a.dir, "--port-range", fmt.Sprintf("%d-%d", base+25*i, base+25*i+24),
			"--admin-listen", "-", "--kinds-file", kinds, "--cgroups=false",
			"--session-timeout", "2s", "--health-interval", "200ms", "--restart-backoff", "100ms",
			"--crash-loop", "2", "--stop-grace", "2s")
	}
	testutil.EventuallyErr(t, 30*time.Second, "four allocators live", func() error {
		vs, err := s.reg.List()
		if err != nil {
			return err
		}
		live := 0
		for _, v := range vs {
			if v.Live != nil {
				live++
			}
		}
		if live != 4 {
			return fmt.Errorf("%d of 4 live", live)
		}
		return nil
	})
	for _, id := range []string{"c1", "c2"} {
		c := &csProc{id: id}
		s.cons = append(s.cons, c)
		s.start(c, "constructor", "--zk", s.rp.zkFlag(), "--id", id, "--retire-grace", csGrace.String(),
			"--converge-timeout", "10s", "--interval", "200ms", "--session-timeout", "2s", "--start-timeout", "30s",
			"--lost-grace", csLost.String())
		if id == "c1" {
			logSays(t, c.out, "leading: carrying plans out", "c1 leads")
		}
	}
	return s
}

// start runs `switchyard ROLE ARGS...` as p; p.role and p.args keep
// them for starting it again.
func (s *csSite) start(p *csProc, role string, args ...string) {
	s.t.Helper()
	p.role, p.args = role, args
	if p.out == nil {
		// A process started again writes on after its earlier output.
		p.out = &testutil.Buffer{}
	}
	p.done = make(chan struct{})
	p.cmd = exec.Command(binary, append([]string{role}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("starting %s %s: %v", role, p.id, err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
}

func (s *csSite) cleanup() {
	t := s.t
	for _, c := range s.cons {
		if c.cmd != nil {
			c.kill(t)
		}
	}
	for _, a := range s.allocs {
		if a.cmd != nil {
			a.kill(t)
		}
	}
	var pids []int
	for _, a := range s.allocs {
		states, _ := filepath.Glob(filepath.Join(a.dir, "*", "state.json"))
		for _, f := range states {
			b, err := os.ReadFile(f)
			var st struct {
				Pid int `json:"pid"`
			}
			if err != nil || json.Unmarshal(b, &st) != nil || st.Pid <= 0 {
				continue
			}
			// Only the instance the state names: its pid may have gone
			// to another process since.
			if csIsInstance(st.Pid, filepath.Base(filepath.Dir(f))) {
				_ = syscall.Kill(st.Pid, syscall.SIGKILL)
				pids = append(pids, st.Pid)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for allocAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if allocAlive(pid) {
			t.Errorf("instance pid %d still runs 10s after SIGKILL", pid)
		}
	}
	if t.Failed() {
		for _, p := range append(slices.Clone(s.cons), s.allocs...) {
			if p.out != nil {
				t.Logf("%s output, last lines:\n%s", p.id, allocTail(p.out.String(), 60))
			}
		}
	}
}

// csIsInstance reports whether pid is the instance id (its environment
// says so).
func csIsInstance(pid int, id string) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && slices.Contains(strings.Split(string(env), "\x00"), "SWITCHYARD_INSTANCE_ID="+id)
}

// yardctl runs yardctl against the site and returns its stdout, stderr
// and exit code.
func (s *csSite) yardctl(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(yardctl, append([]string{"--zk", s.rp.zkFlag()}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("yardctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// yardctlOK is yardctl that must succeed.
func (s *csSite) yardctlOK(args ...string) string {
	s.t.Helper()
	out, errs, code := s.yardctl(args...)
	if code != 0 {
		s.t.Fatalf("yardctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// planFile writes a plan file and returns its path.
func (s *csSite) planFile(dep, kind, aliases, memory string) string {
	s.t.Helper()
	return s.planFileStrategy(dep, kind, aliases, memory, "")
}

// planFileStrategy is planFile with a strategy ("" for the default).
func (s *csSite) planFileStrategy(dep, kind, aliases, memory, strategy string) string {
	s.t.Helper()
	body := fmt.Sprintf("deployment: %s\nkind: %s\n", dep, kind)
	if aliases != "" {
		body += "aliases: [" + aliases + "]\n"
	}
	body += "zones: 2\nper_zone: 1\nmemory: " + memory + "\n"
	name := fmt.Sprintf("%s-%s-%s", dep, kind, memory)
	if strategy != "" {
		body += "strategy: " + strategy + "\n"
		name += "-" + strategy
	}
	path := filepath.Join(s.files, name+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// applyWait runs `yardctl plan apply -f FILE --wait` and returns its
// output, exit code and how long it took.
func (s *csSite) applyWait(file string) (stdout, stderr string, code int, took time.Duration) {
	start := time.Now()
	stdout, stderr, code = s.yardctl("plan", "apply", "-f", file, "--wait", "--timeout", csWait)
	return stdout, stderr, code, time.Since(start)
}

// csPlanShow is what `yardctl plan show -o json` prints.
type csPlanShow struct {
	Deployment string       `json:"deployment"`
	Revision   int          `json:"revision"`
	Status     *plan.Status `json:"status"`
}

// show is the plan's record through yardctl.
func (s *csSite) show(dep string) *csPlanShow {
	s.t.Helper()
	var r csPlanShow
	out := s.yardctlOK("-o", "json", "plan", "show", dep)
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		s.t.Fatalf("plan show -o json: %v\n%s", err, out)
	}
	return &r
}

// csSteps says how long each step of revision rev took, from its status's
// history: an entry is written when a step is left (and when the change
// ends), so each step ran from the entry before (for the first, from
// begun) to its own.
func csSteps(st *plan.Status, rev int, begun time.Time) string {
	var parts []string
	last := begun
	for _, h := range st.History {
		if h.Revision != rev || h.State == plan.StatePending {
			continue
		}
		what := h.Step
		if h.State != plan.StateRunning {
			what += " (" + string(h.State) + ")"
		}
		parts = append(parts, fmt.Sprintf("%s %v", what, h.At.Sub(last).Round(time.Millisecond)))
		last = h.At
	}
	return strings.Join(parts, ", ")
}

// csRoutes is the part of `yardctl routes DEPLOYMENT -o json` compared
// before and after a change that must not touch the table.
type csRoutes struct {
	Deployments []json.RawMessage `json:"deployments"`
}

func (s *csSite) routes(dep string) string {
	s.t.Helper()
	var r csRoutes
	out := s.yardctlOK("-o", "json", "routes", dep)
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Deployments) != 1 {
		s.t.Fatalf("routes %s -o json: %v\n%s", dep, err, out)
	}
	return string(r.Deployments[0])
}

// csAllocator is one allocator in `yardctl allocators -o json`.
type csAllocator struct {
	ID        string `json:"id"`
	Zone      string `json:"zone"`
	UsedBytes int64  `json:"used_bytes"`
	Instances map[string]struct {
		registry.Assignment
		Status *registry.Status `json:"status"`
	} `json:"instances"`
}

func (s *csSite) allocators() []csAllocator {
	s.t.Helper()
	var as []csAllocator
	out := s.yardctlOK("-o", "json", "allocators")
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		s.t.Fatalf("allocators -o json: %v\n%s", err, out)
	}
	return as
}

// csInstance is an instance of a deployment as the allocators report it.
type csInstance struct {
	id, allocator, zone, generation string
	memory                          int64
	st                              *registry.Status
}

// instances are dep's assigned instances, by ID.
func (s *csSite) instances(dep string) map[string]csInstance {
	s.t.Helper()
	vs, err := s.reg.List()
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]csInstance{}
	for _, v := range vs {
		for id, a := range v.Assignments {
			if a.Deployment == dep {
				out[id] = csInstance{id: id, allocator: v.ID, zone: v.Zone, generation: a.Generation, memory: a.MemoryBytes, st: v.Statuses[id]}
			}
		}
	}
	return out
}

// checkInstances checks that dep runs exactly two instances, of
// generation gen and mem each, one per zone, and that the allocators
// have 2×mem plus others assigned in all; it returns the instances' pids.
func (s *csSite) checkInstances(dep, gen string, mem, others int64) []int {
	s.t.Helper()
	var pids []int
	zones := map[string]bool{}
	for id, in := range s.instances(dep) {
		if in.generation != gen || in.memory != mem {
			s.t.Errorf("%s: instance %s of generation %s, %d MiB assigned; want only generation %s, %d MiB", dep, id, in.generation, in.memory/csMiB, gen, mem/csMiB)
		}
		if in.st == nil || in.st.State != registry.StateRunning || in.st.Pid <= 0 {
			s.t.Errorf("%s: instance %s: status %+v; want running", dep, id, in.st)
			continue
		}
		zones[in.zone] = true
		pids = append(pids, in.st.Pid)
	}
	if len(pids) != 2 || len(zones) != 2 {
		s.t.Errorf("%s: %d running instances in zones %v; want 2 in zone-a and zone-b", dep, len(pids), zones)
	}
	var used int64
	for _, a := range s.allocators() {
		used += a.UsedBytes
	}
	if want := 2*mem + others; used != want {
		s.t.Errorf("memory assigned over the allocators: %d MiB; want %d MiB", used/csMiB, want/csMiB)
	}
	return pids
}

// waitGone waits until none of pids runs, and says how long it took.
func (s *csSite) waitGone(what string, pids []int) time.Duration {
	s.t.Helper()
	return testutil.EventuallyErr(s.t, 20*time.Second, what, func() error {
		for _, pid := range pids {
			if allocAlive(pid) {
				return fmt.Errorf("pid %d still runs", pid)
			}
		}
		return nil
	})
}

// checkTable checks that dep's table entry serves generation gen only,
// on two instances of it.
func (s *csSite) checkTable(dep, gen string) {
	s.t.Helper()
	d, _, err := s.table.ReadSpec(s.t.Context(), dep)
	if err != nil {
		s.t.Fatalf("%s in the table: %v", dep, err)
	}
	ok := len(d.Serving) == 1 && d.Serving[gen] == 100 && len(d.Instances) == 2
	for _, in := range d.Instances {
		ok = ok && in.Generation == gen
	}
	if !ok {
		b, _ := json.Marshal(d)
		s.t.Errorf("%s in the table: %s; want serving %s=100 on its two instances only", dep, b, gen)
	}
}

// csAsk sends one GET through proxy p for key and returns what answered.
func csAsk(client *http.Client, p *proc, key string) (allocReply, error) {
	var rep allocReply
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/", nil)
	req.Header.Set("X-Found-Cluster", key)
	resp, err := client.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%s: %q", resp.Status, b)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("200 but not an instance's answer: %v: %q", err, b)
	}
	return rep, nil
}

// everyProxyAnswers checks that every proxy answers every key with an
// instance of dep's generation gen.
func (s *csSite) everyProxyAnswers(dep, gen string, keys ...string) error {
	for i, p := range s.proxies {
		for _, key := range keys {
			rep, err := csAsk(httpClient, p, key)
			if err != nil {
				return fmt.Errorf("proxy p%d, %s: %v", i+1, key, err)
			}
			if rep.Deployment != dep || rep.Generation != gen || !strings.HasPrefix(rep.Instance, dep+"-"+gen+"-") {
				return fmt.Errorf("proxy p%d, %s: answered by %+v; want %s generation %s", i+1, key, rep, dep, gen)
			}
		}
	}
	return nil
}

// csLoad is constant open-loop load through every proxy, counted by the
// generation that answered (X-Found-Handling-Instance), and beside it a
// probe per proxy: one request at a time, whose answers (the instance's
// JSON) must move from one generation to the next and never back.
type csLoad struct {
	t     *testing.T
	loads []*loadtest.Load
	mu    sync.Mutex
	by    map[string]int64     // deployment/generation -> responses
	inst  map[string]int64     // instance -> responses
	last  map[string]time.Time // instance -> its last response
	stop  chan struct{}
	wg    sync.WaitGroup
	probe []*csProbe
}

type csProbe struct {
	sent, ok int64
	fails    []string
	gens     []string // generations of csDep that answered, each change once
}

// load starts rate requests a second in all, spread over the proxies, on
// keys picked at random, until stopped.
func (s *csSite) load(rate float64, keys ...string) *csLoad {
	s.t.Helper()
	l := &csLoad{t: s.t, by: map[string]int64{}, inst: map[string]int64{}, last: map[string]time.Time{}, stop: make(chan struct{})}
	for _, p := range s.proxies {
		ld, err := loadtest.Start(s.t.Context(), loadtest.Config{
			URL: "http://" + p.addr + "/", Keys: keys, Rate: rate / float64(len(s.proxies)), Connections: 8,
			Duration: 3 * time.Minute, Timeout: 5 * time.Second, OnResponse: l.tally,
		})
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { ld.Stop() })
		l.loads = append(l.loads, ld)
	}
	for _, p := range s.proxies {
		pr := &csProbe{}
		l.probe = append(l.probe, pr)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				key := []string{csDep, "search.es"}[n%2]
				pr.sent++
				rep, err := csAsk(client, p, key)
				switch {
				case err != nil:
					pr.fails = append(pr.fails, fmt.Sprintf("%s: %s: %v", time.Now().Format("15:04:05.000"), key, err))
				case rep.Deployment != csDep:
					pr.fails = append(pr.fails, fmt.Sprintf("%s: answered by %+v", key, rep))
				default:
					pr.ok++
					if len(pr.gens) == 0 || pr.gens[len(pr.gens)-1] != rep.Generation {
						pr.gens = append(pr.gens, rep.Generation)
					}
				}
			}
		}()
	}
	testutil.Eventually(s.t, 15*time.Second, "the load gets answers", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.by) > 0
	})
	return l
}

func (l *csLoad) tally(r *loadtest.Result) {
	in := string(r.Header("X-Found-Handling-Instance"))
	if in == "" {
		return
	}
	now := time.Now()
	// An instance's ID is <deployment>-r<revision>-<n>, with "m" after
	// it for a replacement.
	h := in
	parts := strings.Split(h, "-")
	if len(parts) == 3 {
		h = parts[0] + "/" + parts[1]
	}
	l.mu.Lock()
	l.by[h]++
	l.inst[in]++
	l.last[in] = now
	l.mu.Unlock()
}

// byInstance is how many responses instance in gave, and when the last
// one arrived (zero if none).
func (l *csLoad) byInstance(in string) (int64, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inst[in], l.last[in]
}

// answered is a copy of the counts by deployment/generation.
func (l *csLoad) answered() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for k, v := range l.by {
		out[k] = v
	}
	return out
}

// csCounts are the requests of a load and its probes.
type csCounts struct{ sent, ok, failed int64 }

func (c csCounts) String() string {
	return fmt.Sprintf("requests sent %d, ok %d, failed %d", c.sent, c.ok, c.failed)
}

// finish stops the load and checks that no request failed and that each
// probe saw generations gens of csDep, in that order; it logs the counts
// and returns them.
func (l *csLoad) finish(what string, gens ...string) csCounts {
	l.t.Helper()
	return l.end(what, fmt.Sprint(gens), func(got []string) bool { return slices.Equal(got, gens) })
}

// finishShared is finish for a change during which two generations serve
// side by side (a rolling change): each probe saw from first and to
// last, and in between only those two, in any turn.
func (l *csLoad) finishShared(what, from, to string) csCounts {
	l.t.Helper()
	return l.end(what, fmt.Sprintf("%s first, %s last, only those", from, to), func(got []string) bool {
		if len(got) == 0 || got[0] != from || got[len(got)-1] != to {
			return false
		}
		for _, g := range got {
			if g != from && g != to {
				return false
			}
		}
		return true
	})
}

// end stops the load and checks that no request failed and that the
// generations each probe saw in turn pass gensOK (want says what it
// wants); it logs the counts and returns them.
func (l *csLoad) end(what, want string, gensOK func([]string) bool) csCounts {
	t := l.t
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	var sent, ok, failed int64
	for i, ld := range l.loads {
		ld.Stop()
		r := ld.Wait()
		checkNoFailures(t, fmt.Sprintf("%s, load through proxy p%d", what, i+1), r)
		sent += r.Sent - r.Canceled + r.Unsent
		ok += r.Status[200]
		failed += r.Sent - r.Canceled - r.Status[200] + r.Expired + r.Unsent
	}
	for i, pr := range l.probe {
		sent += pr.sent
		ok += pr.ok
		failed += int64(len(pr.fails))
		for _, f := range pr.fails {
			t.Errorf("%s: probe through proxy p%d failed: %s", what, i+1, f)
		}
		if !gensOK(pr.gens) {
			t.Errorf("%s: probe through proxy p%d was answered by generations %v in turn; want %s", what, i+1, pr.gens, want)
		}
	}
	c := csCounts{sent, ok, failed}
	t.Logf("%s: %v (load and probes); answered by %v", what, c, l.answered())
	return c
}

// leader is the ID of the constructor whose candidate znode is the
// lowest.
func (s *csSite) leader() string {
	s.t.Helper()
	kids, _, err := s.conn.Children(csElection)
	if err != nil || len(kids) == 0 {
		s.t.Fatalf("%s: %v, %d candidates", csElection, err, len(kids))
	}
	seq := func(n string) string { return n[strings.LastIndex(n, "n-")+2:] }
	slices.SortFunc(kids, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
	data, _, err := s.conn.Get(csElection + "/" + kids[0])
	if err != nil {
		s.t.Fatal(err)
	}
	return string(data)
}

// The constructor processes carry plans out end to end, through real
// allocators, route server and proxies, with every request counted:
//
//  1. a plan creates a deployment, routable by ID and alias through
//     every proxy;
//  2. a change of its memory under load: the new generation takes over,
//     no request fails, the old instances end and their memory is free;
//  3. the leading constructor killed in the middle of a change: the
//     standby finishes it, no request fails;
//  4. a plan that needs more memory than there is fails at place, naming
//     the zones, and the table is untouched;
//  5. a new generation whose instances never run fails at start, and
//     traffic stays where it was;
//  6. an allocator SIGKILLed under load: its instance of the deployment
//     is replaced in its zone, swapped in the table in one write, and
//     no request fails; started again, the allocator stops the
//     instances it left running;
//  7. a rolling change under load: zone by zone, both generations
//     serving half-way, and no request fails.
func TestConstructorCarriesPlansOutUnderLoad(t *testing.T) {
	s := startCSite(t)
	const rate = 150 // requests a second in all, over the three proxies

	// 1. Create.
	begun := time.Now()
	out, errs, code, took := s.applyWait(s.planFile(csDep, "es", "search", "64MiB"))
	if code != 0 || !strings.Contains(out, "plan "+csDep+": revision 1 done, generation r1") {
		t.Fatalf("plan apply --wait of revision 1: exit %d\n%s%s", code, out, errs)
	}
	routable := testutil.EventuallyErr(t, 15*time.Second, "every proxy routes the new deployment", func() error {
		return s.everyProxyAnswers(csDep, "r1", csDep, "search.es")
	})
	rec := s.show(csDep)
	t.Logf("revision 1 (create, 2×64MiB): plan apply --wait %v, routable by ID and alias through the 3 proxies %v later; steps: %s",
		took.Round(time.Millisecond), routable.Round(time.Millisecond), csSteps(rec.Status, 1, begun))
	s.checkTable(csDep, "r1")
	r1 := s.checkInstances(csDep, "r1", 64*csMiB, 0)

	// 2. Grow and shrink under load.
	for _, pid := range r1 {
		if !allocAlive(pid) {
			t.Fatalf("instance pid %d of r1 does not run", pid)
		}
	}
	l := s.load(rate, csDep, "search.es")
	time.Sleep(500 * time.Millisecond)
	begun = time.Now()
	out, errs, code, took = s.applyWait(s.planFile(csDep, "es", "search", "96MiB"))
	if code != 0 || !strings.Contains(out, "plan "+csDep+": revision 2 done, generation r2") {
		t.Fatalf("plan apply --wait of revision 2: exit %d\n%s%s", code, out, errs)
	}
	done := time.Now()
	// The change waited for the proxies before the drain: every one of
	// them sends to the new generation now.
	if err := s.everyProxyAnswers(csDep, "r2", csDep, "search.es"); err != nil {
		t.Errorf("after revision 2 was done: %v", err)
	}
	s.waitGone("the instances of r1 end", r1)
	gone := time.Since(done)
	time.Sleep(time.Second)
	l.finish("revision 2 (64MiB → 96MiB)", "r1", "r2")
	rec = s.show(csDep)
	t.Logf("revision 2 (2×64MiB → 2×96MiB) under %d req/s: plan apply --wait %v; r1's processes gone within %v after it returned; steps: %s",
		rate, took.Round(time.Millisecond), gone.Round(time.Millisecond), csSteps(rec.Status, 2, begun))
	if st := rec.Status; st == nil || st.Revision != 2 || st.State != plan.StateDone || st.Generation != "r2" {
		t.Errorf("status after revision 2: %+v", st)
	}
	s.checkTable(csDep, "r2")
	r2 := s.checkInstances(csDep, "r2", 96*csMiB, 0)

	// 3. The leader killed in the middle of a change.
	l = s.load(rate, csDep, "search.es")
	begun = time.Now()
	s.yardctlOK("plan", "apply", "-f", s.planFile(csDep, "es", "search", "128MiB"))
	var at string
	testutil.EventuallyErr(t, 60*time.Second, "revision 3 past its cutover", func() error {
		st := s.show(csDep).Status
		switch {
		case st == nil || st.Revision != 3:
			return fmt.Errorf("status %+v", st)
		case st.State.Final():
			t.Fatalf("revision 3 ended (%s at %s) before the leader could be killed in its middle", st.State, st.Step)
		case st.Step == "drain" || st.Step == "remove" || st.Step == "release":
			at = st.Step
			return nil
		}
		return fmt.Errorf("at step %s", st.Step)
	})
	leader := s.leader()
	var victim, standby *csProc
	for _, c := range s.cons {
		if c.id == leader {
			victim = c
		} else {
			standby = c
		}
	}
	if victim == nil || standby == nil {
		t.Fatalf("leader %q is not one of the constructors", leader)
	}
	if !strings.Contains(victim.out.String(), "leading: carrying plans out") {
		t.Errorf("%s has the lowest candidate znode but never logged that it leads", victim.id)
	}
	victim.kill(t)
	killed := time.Now()
	out, errs, code = s.yardctl("plan", "show", csDep, "--wait", "--timeout", csWait)
	finished := time.Since(killed)
	if code != 0 {
		t.Errorf("plan show --wait after %s was killed at step %s of revision 3: exit %d\n%s%s", victim.id, at, code, out, errs)
	}
	logSays(t, standby.out, "leading: carrying plans out", standby.id+" takes the lead")
	leads := csLogTime(standby.out.String(), "leading: carrying plans out").Sub(killed)
	time.Sleep(time.Second)
	l.finish(fmt.Sprintf("revision 3 (96MiB → 128MiB), leader %s killed at step %s", victim.id, at), "r2", "r3")
	rec = s.show(csDep)
	t.Logf("revision 3 (2×96MiB → 2×128MiB): leader %s SIGKILLed at step %s, %v after the apply; %s leading %v later (session timeout 2s), the change done %v after the kill; steps: %s",
		victim.id, at, killed.Sub(begun).Round(time.Millisecond), standby.id, leads.Round(time.Millisecond), finished.Round(time.Millisecond), csSteps(rec.Status, 3, begun))
	if st := rec.Status; st == nil || st.Revision != 3 || st.State != plan.StateDone || st.Generation != "r3" {
		t.Fatalf("status after the takeover: %+v", st)
	}
	// The standby, not the leader before its end, finished the change.
	if h := rec.Status.History; len(h) == 0 || !h[len(h)-1].At.After(killed) {
		t.Errorf("revision 3 ended before %s was killed: history %+v", victim.id, h)
	}
	if l := standby.out.String(); !strings.Contains(l, `"msg":"plan finished","deployment":"`+csDep+`","revision":3,"state":"done"`) {
		t.Errorf("%s did not log that it finished revision 3:\n%s", standby.id, allocTail(l, 30))
	}
	if l := s.leader(); l != standby.id {
		t.Errorf("leader after the takeover: %q; want %s", l, standby.id)
	}
	s.waitGone("the instances of r2 end", r2)
	s.checkTable(csDep, "r3")
	s.checkInstances(csDep, "r3", 128*csMiB, 0)

	// 4. More memory than there is.
	before := s.routes(csDep)
	l = s.load(rate, csDep, "search.es")
	out, errs, code, took = s.applyWait(s.planFile(csDep, "es", "search", "4GiB"))
	want := "plan " + csDep + ": revision 4 failed at step place: "
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("plan apply --wait of 4GiB instances on 1GiB allocators: exit %d\n%s%s\nwant exit 1 and %q", code, out, errs, want)
	}
	rec = s.show(csDep)
	if st := rec.Status; st == nil || st.Revision != 4 || st.State != plan.StateFailed || st.Step != "place" ||
		!strings.Contains(st.Reason, "zone-a") || !strings.Contains(st.Reason, "zone-b") || !strings.Contains(st.Reason, "4 GiB") {
		t.Errorf("status of revision 4: %+v; want failed at place, naming zone-a, zone-b and 4 GiB", st)
	} else {
		t.Logf("revision 4 (2×4GiB) failed in %v: %s", took.Round(time.Millisecond), st.Reason)
	}
	time.Sleep(time.Second)
	l.finish("revision 4 (4GiB, refused)", "r3")
	if after := s.routes(csDep); after != before {
		t.Errorf("the table changed with a refused plan:\n%s\n->\n%s", before, after)
	}
	r3 := s.checkInstances(csDep, "r3", 128*csMiB, 0)

	// 5. A new generation that never runs.
	begun = time.Now()
	out, errs, code, took = s.applyWait(s.planFile(csOther, "es", "", "64MiB"))
	if code != 0 {
		t.Fatalf("plan apply --wait of %s revision 1: exit %d\n%s%s", csOther, code, out, errs)
	}
	routable = testutil.EventuallyErr(t, 15*time.Second, "every proxy routes "+csOther, func() error {
		return s.everyProxyAnswers(csOther, "r1", csOther)
	})
	t.Logf("%s revision 1 (create, 2×64MiB): plan apply --wait %v, routable through the 3 proxies %v later; steps: %s",
		csOther, took.Round(time.Millisecond), routable.Round(time.Millisecond), csSteps(s.show(csOther).Status, 1, begun))
	other := s.checkInstances(csOther, "r1", 64*csMiB, 2*128*csMiB)
	before, beforeOther := s.routes(csDep), s.routes(csOther)
	l = s.load(rate, csDep, "search.es", csOther)
	begun = time.Now()
	out, errs, code, took = s.applyWait(s.planFile(csOther, "broken", "", "64MiB"))
	want = "plan " + csOther + ": revision 2 failed at step start: "
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("plan apply --wait of kind broken: exit %d\n%s%s\nwant exit 1 and %q", code, out, errs, want)
	}
	rec = s.show(csOther)
	if st := rec.Status; st == nil || st.Revision != 2 || st.State != plan.StateFailed || st.Step != "start" ||
		!strings.Contains(st.Reason, "exited with status 7") {
		t.Errorf("status of %s revision 2: %+v; want failed at start, \"exited with status 7\"", csOther, st)
	} else {
		t.Logf("%s revision 2 (kind broken) failed in %v: %s; steps: %s", csOther, took.Round(time.Millisecond), st.Reason, csSteps(st, 2, begun))
	}
	testutil.EventuallyErr(t, 15*time.Second, "the assignments of the failed generation removed", func() error {
		for id, in := range s.instances(csOther) {
			if in.generation != "r1" {
				return fmt.Errorf("%s (generation %s) still assigned to %s", id, in.generation, in.allocator)
			}
		}
		return nil
	})
	time.Sleep(time.Second)
	if err := s.everyProxyAnswers(csOther, "r1", csOther); err != nil {
		t.Errorf("%s after its failed revision: %v", csOther, err)
	}
	l.finish(csOther+" revision 2 (kind broken, failed)", "r3")
	if after := s.routes(csDep); after != before {
		t.Errorf("%s changed in the table:\n%s\n->\n%s", csDep, before, after)
	}
	if after := s.routes(csOther); after != beforeOther {
		t.Errorf("%s changed in the table with a failed revision:\n%s\n->\n%s", csOther, beforeOther, after)
	}
	if pids := s.checkInstances(csOther, "r1", 64*csMiB, 2*128*csMiB); !slices.Equal(csSorted(pids), csSorted(other)) {
		t.Errorf("%s's instances changed: pids %v -> %v", csOther, other, pids)
	}
	if pids := s.checkInstances(csDep, "r3", 128*csMiB, 2*64*csMiB); !slices.Equal(csSorted(pids), csSorted(r3)) {
		t.Errorf("%s's instances changed: pids %v -> %v", csDep, r3, pids)
	}

	// 6. An allocator SIGKILLed under load, then started again; 7. a
	// rolling change under load. This order, with the start again in
	// between, makes both meaningful: here every zone has two live
	// allocators, so the one killed leaves in its zone another one with
	// room and without an instance of the deployment, and the
	// replacement must stay in the zone; started again, the allocator
	// shows that it stops the instance it left running, whose assignment
	// went meanwhile. Then, in 7, each zone again has an allocator
	// without an instance of the deployment (placement never puts two of
	// one deployment on one allocator), which a rolling change needs,
	// and it carries a generation that holds a replacement.
	var old csInstance
	for _, in := range s.instances(csDep) {
		if in.zone == "zone-a" {
			old = in
		}
	}
	var dead *csProc
	for _, a := range s.allocs {
		if a.id == old.allocator {
			dead = a
		}
	}
	if dead == nil {
		t.Fatalf("%s's instance in zone-a is on none of the allocators: %+v", csDep, s.instances(csDep))
	}
	vv, err := s.reg.Read(dead.id)
	if err != nil {
		t.Fatal(err)
	}
	// Every instance there is replaced (cccc0002's too, when it is
	// there), and every one of them runs on after the allocator's end;
	// should the test end before the allocator is started again, the
	// cleanup kills them from their state files, as it does every
	// instance.
	var orphans []int
	for _, in := range vv.InstanceIDs() {
		if st := vv.Statuses[in]; st == nil || st.State != registry.StateRunning || st.Pid <= 0 {
			t.Fatalf("instance %s on %s: status %+v; want running", in, dead.id, st)
		} else {
			orphans = append(orphans, st.Pid)
		}
	}
	newID := old.id + "m"
	lead := s.cons[slices.IndexFunc(s.cons, func(c *csProc) bool { return c.id == s.leader() })]
	depNode := allocRoot + "/deployments/" + csDep
	_, st0, err := s.conn.Get(depNode)
	if err != nil {
		t.Fatal(err)
	}
	d0, _, err := s.table.ReadSpec(t.Context(), csDep)
	if err != nil {
		t.Fatal(err)
	}
	l = s.load(rate, csDep, "search.es")
	time.Sleep(500 * time.Millisecond)
	dead.kill(t)
	killed = time.Now()
	var swapped *routes.DeploymentSpec
	testutil.EventuallyErr(t, 30*time.Second, "the replacement "+newID+" in the table", func() error {
		d, _, err := s.table.ReadSpec(t.Context(), csDep)
		if err != nil {
			return err
		}
		if !slices.Contains(csIDs(d), newID) {
			return fmt.Errorf("instances %v", csIDs(d))
		}
		swapped = d
		return nil
	})
	inTable := time.Since(killed)
	// One write: the deployment's znode, set in every transaction that
	// changes the deployment, is one version further; the old instance
	// is out, the replacement in, of the same generation and zone, and
	// the serving map is as it was.
	_, st1, err := s.conn.Get(depNode)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Version != st0.Version+1 {
		t.Errorf("%s's znode went from version %d to %d with the swap; want one write", csDep, st0.Version, st1.Version)
	}
	wantIDs := slices.Sorted(slices.Values(append(slices.DeleteFunc(csIDs(d0), func(id string) bool { return id == old.id }), newID)))
	if got := csIDs(swapped); !slices.Equal(got, wantIDs) {
		t.Errorf("%s's instances after the swap: %v; want %v", csDep, got, wantIDs)
	}
	if i := slices.IndexFunc(swapped.Instances, func(in *routes.Instance) bool { return in.ID == newID }); i >= 0 {
		if in := swapped.Instances[i]; in.Generation != old.generation || in.Zone != old.zone {
			t.Errorf("%s in the table: generation %s, zone %s; want %s, %s", newID, in.Generation, in.Zone, old.generation, old.zone)
		}
	}
	if !maps.Equal(swapped.Serving, d0.Serving) {
		t.Errorf("%s's serving map changed with the swap: %v -> %v", csDep, d0.Serving, swapped.Serving)
	}
	testutil.EventuallyErr(t, 20*time.Second, "the old assignment "+old.id+" removed", func() error {
		if in, ok := s.instances(csDep)[old.id]; ok {
			return fmt.Errorf("still assigned to %s", in.allocator)
		}
		return nil
	})
	removed := time.Since(killed)
	repl, ok := s.instances(csDep)[newID]
	switch {
	case !ok:
		t.Fatalf("%s is not assigned", newID)
	case repl.allocator == dead.id || repl.zone != old.zone || repl.generation != old.generation || repl.memory != old.memory:
		t.Errorf("%s on %s (%s), generation %s, %d MiB; want another allocator of %s, generation %s, %d MiB",
			newID, repl.allocator, repl.zone, repl.generation, repl.memory/csMiB, old.zone, old.generation, old.memory/csMiB)
	case repl.st == nil || repl.st.State != registry.StateRunning:
		t.Errorf("%s: status %+v; want running", newID, repl.st)
	}
	// The old assignment went after the swap, and left the table alone.
	if _, st2, err := s.conn.Get(depNode); err != nil || st2.Version != st1.Version {
		t.Errorf("%s's znode changed after the swap (version %d -> %v, %v)", csDep, st1.Version, st2, err)
	}
	if lg := lead.out.String(); !strings.Contains(lg, `"msg":"instance replaced","deployment":"`+csDep+`","old":"`+old.id+`","from":"`+dead.id+`","new":"`+newID+`"`) {
		t.Errorf("%s did not log that it replaced %s:\n%s", lead.id, old.id, allocTail(lg, 30))
	}
	if lg := lead.out.String(); strings.Contains(lg, "proxies not all at the swap's version") {
		t.Errorf("%s removed the old instance without the proxies at the swap's version:\n%s", lead.id, allocTail(lg, 30))
	}
	notLive := csLogTimeOf(lead.out.String(), "allocator not live", `"allocator":"`+dead.id+`"`).Sub(killed)
	placed := csLogTimeOf(lead.out.String(), "replacement placed", `"instance":"`+newID+`"`).Sub(killed)
	time.Sleep(time.Second)
	counts := l.finish(fmt.Sprintf("allocator %s SIGKILLed", dead.id), old.generation)
	nNew, _ := l.byInstance(newID)
	nOld, lastOld := l.byInstance(old.id)
	if nNew == 0 {
		t.Errorf("the replacement %s never answered the load through the proxies", newID)
	}
	// The proxies left the old instance before its assignment went (the
	// constructor waits for them); a request already on its way may end
	// just after.
	if lastOld.After(killed.Add(removed + 250*time.Millisecond)) {
		t.Errorf("the old instance %s answered through the proxies %v after the kill, past its assignment's removal (%v)",
			old.id, lastOld.Sub(killed).Round(time.Millisecond), removed.Round(time.Millisecond))
	}
	if rep, err := csGet(repl.st.Addr); err != nil {
		t.Errorf("the replacement %s at %s: %v", newID, repl.st.Addr, err)
	} else if rep.Instance != newID || rep.Deployment != csDep || rep.Generation != old.generation || rep.Zone != old.zone {
		t.Errorf("the replacement at %s answers %+v; want instance %s, generation %s, zone %s", repl.st.Addr, rep, newID, old.generation, old.zone)
	}
	t.Logf("allocator %s (%s's %s in %s) SIGKILLed under %d req/s: seen not live %v later, lost grace %v; %s placed on %s %v, in the table %v after the kill (one write: %s out, %s in, generation %s), the old assignment removed %v after the kill; old instance: %d answers, the last %v after the kill; replacement: %d answers; %v",
		dead.id, csDep, old.id, old.zone, rate, notLive.Round(time.Millisecond), csLost, newID, repl.allocator, placed.Round(time.Millisecond),
		inTable.Round(time.Millisecond), old.id, newID, old.generation, removed.Round(time.Millisecond),
		nOld, lastOld.Sub(killed).Round(time.Millisecond), nNew, counts)
	// The other instances the allocator had are replaced alike.
	for _, in := range vv.InstanceIDs() {
		testutil.EventuallyErr(t, 15*time.Second, "the replacement of "+in, func() error {
			vs, err := s.reg.List()
			if err != nil {
				return err
			}
			for _, v := range vs {
				if _, ok := v.Assignments[in]; ok {
					return fmt.Errorf("%s still assigned to %s", in, v.ID)
				}
				if _, ok := v.Assignments[in+"m"]; ok && (v.ID == dead.id || v.Zone != vv.Zone) {
					return fmt.Errorf("%sm on %s (%s); want another allocator of %s", in, v.ID, v.Zone, vv.Zone)
				} else if ok {
					return nil
				}
			}
			return fmt.Errorf("no %sm assigned", in)
		})
	}

	// The allocator started again adopts what it left running, and stops
	// it: the assignments are gone.
	for _, pid := range orphans {
		if !allocAlive(pid) {
			t.Errorf("instance pid %d of %s ended with its allocator", pid, dead.id)
		}
	}
	s.start(dead, dead.role, dead.args...)
	restarted := time.Now()
	testutil.EventuallyErr(t, 15*time.Second, dead.id+" live again", func() error {
		v, err := s.reg.Read(dead.id)
		if err != nil {
			return err
		}
		if v.Live == nil {
			return errors.New("not live")
		}
		return nil
	})
	s.waitGone("the instances left on "+dead.id+" stopped by it, started again", orphans)
	stopped := time.Since(restarted)
	testutil.EventuallyErr(t, 10*time.Second, "the stopped instances' directories and statuses removed", func() error {
		v, err := s.reg.Read(dead.id)
		if err != nil {
			return err
		}
		if len(v.Assignments) != 0 || len(v.Statuses) != 0 {
			return fmt.Errorf("%s: assignments %v, statuses %v", dead.id, slices.Collect(maps.Keys(v.Assignments)), slices.Collect(maps.Keys(v.Statuses)))
		}
		for _, in := range vv.InstanceIDs() {
			if allocDirExists(filepath.Join(dead.dir, in)) {
				return fmt.Errorf("%s's directory is still there", in)
			}
		}
		return nil
	})
	if csLogTimeOf(dead.out.String(), "adopted a running instance", `"id":"`+old.id+`"`).IsZero() {
		t.Errorf("%s, started again, did not adopt %s:\n%s", dead.id, old.id, allocTail(dead.out.String(), 30))
	}
	t.Logf("%s started again: the %d instances it left running adopted and stopped %v after its start", dead.id, len(orphans), stopped.Round(time.Millisecond))
	r3 = s.checkInstances(csDep, old.generation, 128*csMiB, 2*64*csMiB)

	// 7. A rolling change under load.
	l = s.load(rate, csDep, "search.es")
	watched := s.watchServing(csDep)
	time.Sleep(500 * time.Millisecond)
	begun = time.Now()
	out, errs, code, took = s.applyWait(s.planFileStrategy(csDep, "es", "search", "160MiB", "rolling"))
	seen := watched()
	if code != 0 || !strings.Contains(out, "plan "+csDep+": revision 5 done, generation r5") {
		t.Fatalf("plan apply --wait of revision 5 (rolling): exit %d\n%s%s", code, out, errs)
	}
	if err := s.everyProxyAnswers(csDep, "r5", csDep, "search.es"); err != nil {
		t.Errorf("after revision 5 was done: %v", err)
	}
	s.waitGone("the instances of r3 end", r3)
	time.Sleep(500 * time.Millisecond)
	counts = l.finishShared("revision 5 (rolling, 128MiB → 160MiB)", "r3", "r5")
	// The serving maps seen, in turn, are of these, in this order: the
	// first zone's new instance added at weight 0, half of the weight on
	// the new generation while the second zone still runs the old, all
	// on it, the old one gone.
	states := []map[string]int{{"r3": 100}, {"r3": 100, "r5": 0}, {"r3": 50, "r5": 50}, {"r3": 0, "r5": 100}, {"r5": 100}}
	var half, whole time.Time
	k := 0
	for _, sv := range seen {
		for k < len(states) && !maps.Equal(states[k], sv.serving) {
			k++
		}
		if k == len(states) {
			break
		}
		if k == 2 && half.IsZero() {
			half = sv.at
		}
		if k >= 3 && whole.IsZero() {
			whole = sv.at
		}
	}
	if k >= len(states)-1 && half.IsZero() {
		k = len(states) // 50/50 never seen
	}
	if k != len(states)-1 {
		t.Errorf("serving maps of %s seen in turn: %v; want, in this order, some of %v, with {r3:50 r5:50} and ending with {r5:100}", csDep, seen, states)
	}
	rec = s.show(csDep)
	var steps, wantSteps []string
	for _, z := range []string{"zone-a", "zone-b"} {
		for _, st := range []string{"place", "start", "route", "cutover", "converge", "drain", "remove", "release"} {
			wantSteps = append(wantSteps, st+"/"+z)
		}
	}
	if st := rec.Status; st == nil || st.Revision != 5 || st.State != plan.StateDone || st.Generation != "r5" {
		t.Errorf("status after revision 5: %+v", st)
	} else {
		for _, h := range st.History {
			if h.Revision == 5 && h.State != plan.StatePending {
				steps = append(steps, h.Step)
			}
		}
		if !slices.Equal(steps, wantSteps) {
			t.Errorf("steps of revision 5 in the history: %v; want %v", steps, wantSteps)
		}
	}
	t.Logf("revision 5 (rolling, 2×128MiB → 2×160MiB) under %d req/s: plan apply --wait %v; serving r3/r5 at 50/50 from %v after the apply began for %v (serving maps seen: %v); %v; steps: %s",
		rate, took.Round(time.Millisecond), half.Sub(begun).Round(time.Millisecond), whole.Sub(half).Round(time.Millisecond), seen, counts, csSteps(rec.Status, 5, begun))
	s.checkTable(csDep, "r5")
	s.checkInstances(csDep, "r5", 160*csMiB, 2*64*csMiB)
}

// csLogTime is the time of the first line of a JSON log whose message
// is msg (zero if there is none).
func csLogTime(log, msg string) time.Time { return csLogTimeOf(log, msg, "") }

// csLogTimeOf is csLogTime for the first such line that holds has.
func csLogTimeOf(log, msg, has string) time.Time {
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if strings.Contains(line, has) && json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
			return l.Time
		}
	}
	return time.Time{}
}

// csServing is a serving map and when a poller first saw it.
type csServing struct {
	at      time.Time
	serving map[string]int
}

func (c csServing) String() string {
	b, _ := json.Marshal(c.serving)
	return c.at.Format("15:04:05.000") + " " + string(b)
}

// watchServing reads dep's serving map from the table every 10ms until
// the function it returns is called; that returns each map seen that
// differs from the one before, in turn.
func (s *csSite) watchServing(dep string) (stop func() []csServing) {
	var seen []csServing
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if d, _, err := s.table.ReadSpec(s.t.Context(), dep); err == nil {
				if len(seen) == 0 || !maps.Equal(seen[len(seen)-1].serving, d.Serving) {
					seen = append(seen, csServing{time.Now(), d.Serving})
				}
			}
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() []csServing {
		close(quit)
		<-done
		return seen
	}
}

// csGet asks the instance at addr itself what it is.
func csGet(addr string) (allocReply, error) {
	var rep allocReply
	resp, err := httpClient.Get("http://" + addr + "/")
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("GET %s: %s: %q", addr, resp.Status, b)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("GET %s: %v: %q", addr, err, b)
	}
	return rep, nil
}

// csIDs are the IDs of d's instances, sorted.
func csIDs(d *routes.DeploymentSpec) []string {
	var ids []string
	for _, in := range d.Instances {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	return ids
}

func csSorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
