package allocator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
)

// The test binary is also the instance program and the allocator's shim:
// the allocator runs its own executable for both.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "instance" || os.Args[1] == allocator.ShimCommand) {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const root = "/switchyard"

// rig is one allocator over a real ZooKeeper, run in this process.
type rig struct {
	t      *testing.T
	zk     *zktest.Ensemble
	conn   *zk.Conn
	reg    *registry.Registry
	cfg    allocator.Config
	agent  *allocator.Agent
	cancel context.CancelFunc
	done   chan error
	logs   *testutil.Buffer
	proxy  *zktest.Proxy
}

// canConfine reports whether this host lets the tests make cgroups.
func canConfine() bool {
	return os.Geteuid() == 0 && (dirExists("/sys/fs/cgroup/memory") || fileExists("/sys/fs/cgroup/cgroup.controllers"))
}

func dirExists(p string) bool  { st, err := os.Stat(p); return err == nil && st.IsDir() }
func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func newRig(t *testing.T, tweak func(*allocator.Config)) *rig {
	t.Helper()
	return newRigVia(t, false, tweak)
}

// newRigVia is newRig; with viaProxy the allocator reaches ZooKeeper
// through r.proxy, which the test can block.
func newRigVia(t *testing.T, viaProxy bool, tweak func(*allocator.Config)) *rig {
	t.Helper()
	e := zktest.Start(t)
	r := &rig{t: t, zk: e, logs: &testutil.Buffer{}}
	r.conn = zktest.Connect(t, e.Servers(), 4*time.Second)
	r.reg = registry.New(r.conn, root)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lo := 21000 + int(time.Now().UnixNano()%4000)
	r.cfg = allocator.Config{
		ZK: e.Servers(), ID: "t" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36), Zone: "zone-a", CapacityBytes: 4 << 30,
		InstancesDir: t.TempDir(), PortMin: lo, PortMax: lo + 200,
		AdminListen:    "127.0.0.1:0",
		DefaultKind:    allocator.Kind{Command: []string{self, "instance"}},
		Health:         allocator.HealthConfig{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, Healthy: 1, Unhealthy: 3, StartTimeout: 10 * time.Second},
		Restart:        allocator.RestartConfig{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, CrashLoop: 5, Window: time.Minute},
		StopGrace:      2 * time.Second,
		Cgroups:        canConfine(),
		SessionTimeout: 2 * time.Second,
		RetryInterval:  200 * time.Millisecond,
	}
	if viaProxy {
		r.proxy = zktest.NewProxy(t, e.Server(0))
		r.cfg.ZK = []string{r.proxy.Addr()}
	}
	if tweak != nil {
		tweak(&r.cfg)
	}
	r.start()
	t.Cleanup(func() {
		r.stop()
		r.killAll()
	})
	return r
}

// start runs an allocator on r.cfg.
func (r *rig) start() {
	r.t.Helper()
	cfg := r.cfg
	cfg.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := allocator.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.agent, r.cancel, r.done = a, cancel, make(chan error, 1)
	go func() { r.done <- a.Run(ctx) }()
	testutil.Eventually(r.t, 10*time.Second, "allocator registered and live", func() bool {
		v, err := r.reg.Read(r.cfg.ID)
		return err == nil && v.Live != nil
	})
}

// stop ends the allocator; its instances keep running.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("allocator Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Error("allocator did not stop")
	}
	r.cancel = nil
}

// killAll kills every instance process left (the tests' cleanup: the
// allocator leaves them running by design) and removes the allocator's
// cgroups.
func (r *rig) killAll() {
	entries, _ := os.ReadDir(r.cfg.InstancesDir)
	var pids []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(r.cfg.InstancesDir, e.Name(), "state.json"))
		if err != nil {
			continue
		}
		var st struct{ Pid int }
		if json.Unmarshal(b, &st) == nil && st.Pid > 0 {
			_ = syscall.Kill(st.Pid, syscall.SIGKILL)
			pids = append(pids, st.Pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !r.cfg.Cgroups {
		return
	}
	// Groups first, then their parent: rmdir takes empty groups only.
	for _, ctrl := range []string{"memory", "cpu", ""} {
		parents, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, "*", "switchyard-"+r.cfg.ID))
		more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, "*", "*", "switchyard-"+r.cfg.ID))
		direct, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, "switchyard-"+r.cfg.ID))
		for _, p := range append(append(parents, more...), direct...) {
			groups, _ := os.ReadDir(p)
			for _, g := range groups {
				if g.IsDir() {
					_ = os.Remove(filepath.Join(p, g.Name()))
				}
			}
			_ = os.Remove(p)
		}
	}
}

func (r *rig) assign(id string, mem int64, kind string, spec string) {
	r.t.Helper()
	a := registry.Assignment{Deployment: "dep-" + id, Kind: kind, Generation: "blue", MemoryBytes: mem}
	if spec != "" {
		a.Spec = json.RawMessage(spec)
	}
	if err := r.reg.Assign(r.cfg.ID, id, a); err != nil {
		r.t.Fatal(err)
	}
}

// status reads instance id's status from ZooKeeper.
func (r *rig) status(id string) (*registry.Status, error) {
	v, err := r.reg.Read(r.cfg.ID)
	if err != nil {
		return nil, err
	}
	st := v.Statuses[id]
	if st == nil {
		return nil, fmt.Errorf("no status for %s", id)
	}
	return st, nil
}

// waitState waits until id's status in ZooKeeper satisfies cond.
func (r *rig) waitState(id string, timeout time.Duration, what string, cond func(*registry.Status) bool) *registry.Status {
	r.t.Helper()
	var last *registry.Status
	testutil.EventuallyErr(r.t, timeout, id+" "+what, func() error {
		st, err := r.status(id)
		if err != nil {
			return err
		}
		last = st
		if !cond(st) {
			return fmt.Errorf("status %+v", *st)
		}
		return nil
	})
	return last
}

func running(st *registry.Status) bool { return st.State == registry.StateRunning }

// get asks the instance at addr to describe itself.
func get(addr string) (map[string]any, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/x")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && !zombie(pid) }

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// An assignment becomes a running instance that answers on its address
// with what it is; removing it stops the process and frees its port and
// directory.
func TestAssignmentRunsAndIsRemoved(t *testing.T) {
	r := newRig(t, nil)
	start := time.Now()
	r.assign("i-1", 64<<20, "es", `{"version":"8.1.0"}`)
	st := r.waitState("i-1", 15*time.Second, "running", running)
	t.Logf("assignment to running: %v", time.Since(start))
	rep, err := get(st.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if rep["instance"] != "i-1" || rep["deployment"] != "dep-i-1" || rep["generation"] != "blue" || rep["zone"] != "zone-a" {
		t.Errorf("instance says %v", rep)
	}
	if st.Pid == 0 || !alive(st.Pid) || st.Restarts != 0 || st.Deployment != "dep-i-1" {
		t.Errorf("status %+v", *st)
	}
	dir := filepath.Join(r.cfg.InstancesDir, "i-1")
	if !dirExists(filepath.Join(dir, "data")) {
		t.Errorf("no data directory in %s", dir)
	}
	unassigned := time.Now()
	if err := r.reg.Unassign(r.cfg.ID, "i-1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "status gone", func() bool {
		_, err := r.status("i-1")
		return err != nil
	})
	t.Logf("unassigned to stopped and removed: %v", time.Since(unassigned))
	if alive(st.Pid) {
		t.Errorf("pid %d still runs after the assignment was removed", st.Pid)
	}
	if fileExists(dir) {
		t.Errorf("%s left behind", dir)
	}
	// The port is free again: the next instance gets the same one.
	r.assign("i-2", 64<<20, "es", "")
	st2 := r.waitState("i-2", 15*time.Second, "running", running)
	if st2.Addr != st.Addr {
		t.Errorf("second instance on %s; want the freed %s", st2.Addr, st.Addr)
	}
}

// A killed instance is restarted and the restart counted; a stopped one
// (SIGSTOP) fails its health check and is restarted too.
func TestRestartAfterKillAndStop(t *testing.T) {
	r := newRig(t, nil)
	r.assign("i-1", 64<<20, "es", "")
	st := r.waitState("i-1", 15*time.Second, "running", running)
	first := st.Pid
	killed := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = r.waitState("i-1", 15*time.Second, "running again, restarted", func(s *registry.Status) bool {
		return running(s) && s.Restarts == 1 && s.Pid != first
	})
	t.Logf("SIGKILL to running again: %v (backoff %v)", time.Since(killed), r.cfg.Restart.Backoff)
	if _, err := get(st.Addr); err != nil {
		t.Fatalf("restarted instance: %v", err)
	}
	second := st.Pid
	stopped := time.Now()
	if err := syscall.Kill(second, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	st = r.waitState("i-1", 15*time.Second, "restarted after failing its checks", func(s *registry.Status) bool {
		return running(s) && s.Restarts == 2 && s.Pid != second
	})
	t.Logf("SIGSTOP to running again: %v (checks every %v, timeout %v, %d failures; backoff %v)",
		time.Since(stopped), r.cfg.Health.Interval, r.cfg.Health.Timeout, r.cfg.Health.Unhealthy, 2*r.cfg.Restart.Backoff)
	testutil.Eventually(t, 5*time.Second, "the stopped process killed", func() bool { return !alive(second) })
	m := metricsText(t, r.agent.AdminAddr())
	if !strings.Contains(m, "switchyard_allocator_restarts_total 2") {
		t.Errorf("metrics lack 2 restarts:\n%s", grepLines(m, "switchyard_allocator_"))
	}
}

// An instance that keeps ending is left failed, with its last exit, and
// not restarted forever.
func TestCrashLoopIsFailed(t *testing.T) {
	r := newRig(t, func(c *allocator.Config) {
		c.Kinds = map[string]allocator.Kind{"crash": {Command: []string{"/bin/sh", "-c", "exit 3"}, HealthPath: "/_health"}}
		c.Restart.CrashLoop = 2
	})
	assigned := time.Now()
	r.assign("c-1", 64<<20, "crash", "")
	st := r.waitState("c-1", 15*time.Second, "failed", func(s *registry.Status) bool { return s.State == registry.StateFailed })
	t.Logf("crash-looping kind: assigned to failed in %v (%d restarts)", time.Since(assigned), st.Restarts)
	if !strings.Contains(st.Reason, "crash loop") || !strings.Contains(st.Reason, "exited with status 3") || st.Restarts != 2 {
		t.Errorf("failed status %+v", *st)
	}
	time.Sleep(500 * time.Millisecond) // five backoffs: nothing more happens
	if again, _ := r.status("c-1"); again == nil || again.Restarts != 2 || again.State != registry.StateFailed {
		t.Errorf("after failing: %+v", again)
	}
}

// A malformed assignment is reported invalid and the others run.
func TestMalformedAssignmentIsIsolated(t *testing.T) {
	r := newRig(t, nil)
	p := r.reg.AssignmentPath(r.cfg.ID, "bad-1")
	if _, err := r.conn.Create(p, []byte(`{"deployment":"d","kind":"es","memory_bytes":12}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r.assign("good-1", 64<<20, "es", "")
	bad := r.waitState("bad-1", 10*time.Second, "invalid", func(s *registry.Status) bool { return s.State == registry.StateInvalid })
	if !strings.Contains(bad.Reason, "generation") {
		t.Errorf("invalid reason %q does not name the field", bad.Reason)
	}
	r.waitState("good-1", 15*time.Second, "running", running)
}

// A port range with no port left is a failed status with that reason.
func TestPortRangeExhausted(t *testing.T) {
	r := newRig(t, func(c *allocator.Config) { c.PortMax = c.PortMin })
	r.assign("p-1", 64<<20, "es", "")
	r.waitState("p-1", 15*time.Second, "running", running)
	r.assign("p-2", 64<<20, "es", "")
	st := r.waitState("p-2", 10*time.Second, "failed", func(s *registry.Status) bool { return s.State == registry.StateFailed })
	if !strings.Contains(st.Reason, "no free port") {
		t.Errorf("reason %q", st.Reason)
	}
}

// An allocator stopped and started again adopts its running instances:
// same pids, no restart.
func TestRestartedAllocatorAdopts(t *testing.T) {
	r := newRig(t, nil)
	r.assign("a-1", 64<<20, "es", "")
	r.assign("a-2", 64<<20, "es", "")
	st1 := r.waitState("a-1", 15*time.Second, "running", running)
	st2 := r.waitState("a-2", 15*time.Second, "running", running)
	r.stop()
	if !alive(st1.Pid) || !alive(st2.Pid) {
		t.Fatal("the allocator's end stopped an instance")
	}
	if _, err := get(st1.Addr); err != nil {
		t.Fatalf("instance while no allocator runs: %v", err)
	}
	r.start()
	for _, id := range []string{"a-1", "a-2"} {
		want := map[string]int{"a-1": st1.Pid, "a-2": st2.Pid}[id]
		st := r.waitState(id, 15*time.Second, "running, adopted", func(s *registry.Status) bool {
			return running(s) && s.Reason == "" && s.Pid == want
		})
		if st.Restarts != 0 {
			t.Errorf("%s restarted %d times", id, st.Restarts)
		}
	}
	if !strings.Contains(r.logs.String(), "adopted a running instance") {
		t.Error("no adoption in the log")
	}
	// A recorded pid that is now another process is not adopted.
	if err := syscall.Kill(st1.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitState("a-1", 15*time.Second, "restarted", func(s *registry.Status) bool { return running(s) && s.Pid != st1.Pid })
}

// Losing ZooKeeper stops nothing; a restart meanwhile is reported once
// it is back.
func TestZooKeeperLossIsFailStatic(t *testing.T) {
	r := newRig(t, nil)
	r.assign("z-1", 64<<20, "es", "")
	st := r.waitState("z-1", 15*time.Second, "running", running)
	r.zk.Stop(0)
	deadline := time.Now().Add(4 * time.Second) // past the session timeout
	for time.Now().Before(deadline) {
		if _, err := get(st.Addr); err != nil {
			t.Fatalf("instance without ZooKeeper: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "restarted without ZooKeeper", func() bool {
		doc := r.agent.Status()
		return len(doc.Instances) == 1 && doc.Instances[0].State == registry.StateRunning && doc.Instances[0].Restarts == 1
	})
	r.zk.Start(0)
	r.waitState("z-1", 20*time.Second, "restart reported after ZooKeeper is back", func(s *registry.Status) bool {
		return running(s) && s.Restarts == 1
	})
}

// Each instance gets a cgroup with its size as memory limit and a CPU
// weight in proportion: 2:1 sizes, 2:1 weights. One that allocates past
// its limit is killed and reported oom.
func TestCgroupsLimitAndWeightAndOOM(t *testing.T) {
	if !canConfine() {
		t.Skip("needs root and a cgroup hierarchy with memory and cpu")
	}
	r := newRig(t, func(c *allocator.Config) { c.Restart.CrashLoop = 1 })
	r.assign("small", 64<<20, "es", "")
	r.assign("big", 128<<20, "es", "")
	r.waitState("small", 15*time.Second, "running", running)
	r.waitState("big", 15*time.Second, "running", running)
	doc := r.agent.Status()
	if doc.Cgroups != "v1" && doc.Cgroups != "v2" {
		t.Fatalf("cgroups %q", doc.Cgroups)
	}
	limit := func(id string) (mem, weight int64) {
		for f, v := range doc.Settings[id] {
			n, _ := strconv.ParseInt(v, 10, 64)
			switch filepath.Base(f) {
			case "memory.limit_in_bytes", "memory.max":
				mem = n
			case "cpu.shares", "cpu.weight":
				weight = n
			}
		}
		return
	}
	sm, sw := limit("small")
	bm, bw := limit("big")
	t.Logf("cgroups %s: small %d bytes weight %d, big %d bytes weight %d (%v)", doc.Cgroups, sm, sw, bm, bw, doc.Settings)
	if sm != 64<<20 || bm != 128<<20 {
		t.Errorf("memory limits %d, %d; want %d, %d", sm, bm, 64<<20, 128<<20)
	}
	if sw == 0 || bw != 2*sw {
		t.Errorf("CPU weights %d, %d; want 1:2", sw, bw)
	}
	// The instance's own process is in the group.
	st, _ := r.status("small")
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
	if !strings.Contains(string(cg), "switchyard-"+r.cfg.ID+"/small") {
		t.Errorf("pid %d is in %s", st.Pid, cg)
	}

	hogStart := time.Now()
	r.assign("hog", 64<<20, "es", `{"ballast_bytes": 268435456}`)
	got := r.waitState("hog", 20*time.Second, "failed after OOM kills", func(s *registry.Status) bool {
		return s.State == registry.StateFailed
	})
	t.Logf("256 MiB ballast in a 64 MiB instance: OOM-killed twice, failed in %v: %s", time.Since(hogStart), got.Reason)
	if !strings.Contains(got.Reason, "oom") {
		t.Errorf("reason %q; want oom", got.Reason)
	}
	if m := metricsText(t, r.agent.AdminAddr()); !strings.Contains(m, "switchyard_allocator_oom_kills_total 2") {
		t.Errorf("metrics:\n%s", grepLines(m, "oom"))
	}
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// After its ZooKeeper session expires the allocator registers again with
// a new one: its live node comes back; its instances never noticed.
func TestSessionExpiryRegistersAgain(t *testing.T) {
	r := newRigVia(t, true, nil)
	r.assign("s-1", 64<<20, "es", "")
	st := r.waitState("s-1", 15*time.Second, "running", running)
	_, before, err := r.conn.Exists(r.reg.Path(r.cfg.ID) + "/live")
	if err != nil {
		t.Fatal(err)
	}
	r.proxy.Block()
	testutil.Eventually(t, 15*time.Second, "live node gone with the expired session", func() bool {
		ok, _, err := r.conn.Exists(r.reg.Path(r.cfg.ID) + "/live")
		return err == nil && !ok
	})
	r.proxy.Unblock()
	testutil.Eventually(t, 20*time.Second, "live node back with a new session", func() bool {
		ok, after, err := r.conn.Exists(r.reg.Path(r.cfg.ID) + "/live")
		return err == nil && ok && after.EphemeralOwner != before.EphemeralOwner
	})
	now := r.waitState("s-1", 10*time.Second, "running", running)
	if now.Pid != st.Pid || now.Restarts != 0 {
		t.Errorf("instance after the session expiry: %+v; want pid %d, no restart", *now, st.Pid)
	}
}

// Without cgroups the instances run unconfined, and say so.
func TestUnconfinedSaysSo(t *testing.T) {
	r := newRig(t, func(c *allocator.Config) { c.Cgroups = false })
	r.assign("u-1", 64<<20, "es", "")
	st := r.waitState("u-1", 15*time.Second, "running", running)
	if !st.Unconfined {
		t.Errorf("status %+v: want unconfined", *st)
	}
	if doc := r.agent.Status(); !strings.HasPrefix(doc.Cgroups, "unconfined: ") {
		t.Errorf("/status cgroups %q", doc.Cgroups)
	}
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
	if strings.Contains(string(cg), "switchyard-"+r.cfg.ID) {
		t.Errorf("unconfined instance is in a group of the allocator: %s", cg)
	}
}

// A pid recorded on disk that is now another process (its start time
// differs) is neither adopted nor signalled: the instance is started anew.
func TestReusedPidIsNotAdopted(t *testing.T) {
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	r := newRig(t, nil)
	r.stop()
	// What an earlier allocator would have left, with the pid since
	// given to the sleep process.
	raw := `{"deployment":"dep-r-1","kind":"es","generation":"blue","memory_bytes":67108864}`
	dir := filepath.Join(r.cfg.InstancesDir, "r-1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	state := fmt.Sprintf(`{"assignment":%s,"pid":%d,"start_ticks":1,"port":%d,"restarts":0,"cgroup":false}`, raw, other.Process.Pid, r.cfg.PortMin)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.conn.Create(r.reg.AssignmentPath(r.cfg.ID, "r-1"), []byte(raw), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r.start()
	st := r.waitState("r-1", 15*time.Second, "running", running)
	if st.Pid == other.Process.Pid {
		t.Fatalf("adopted pid %d, which is another process", st.Pid)
	}
	if !alive(other.Process.Pid) {
		t.Error("the process that reused the pid was signalled")
	}
	if !strings.Contains(r.logs.String(), "is another process now") {
		t.Error("no line on the pid not adopted")
	}
}
