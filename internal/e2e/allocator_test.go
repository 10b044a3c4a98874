//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
)

// The allocator tests run three `switchyard allocator` processes as three
// hosts: a network namespace each, joined to a Linux bridge in the test's
// namespace by a veth pair, all on one private /24 (the bridge .1, the
// hosts .2 to .4). ZooKeeper listens on loopback; a forwarder on the
// bridge's address makes it reachable from the hosts. The test reaches
// the instances, and the allocators' admin listeners, through the bridge,
// as a router or a proxy on another host would.

const (
	allocHostCount      = 3
	allocSessionTimeout = 2 * time.Second
	allocAdminPort      = "9290"
	allocInstanceMem    = 64 << 20
	allocRoot           = "/switchyard"
)

// allocHosts is the bridge, the hosts, ZooKeeper and a client session of
// the test's own.
type allocHosts struct {
	t        *testing.T
	suffix   string // random, in every name, so that runs do not clash
	subnet   string // "10.213.X."
	bridge   string
	capacity string
	// nsenter: the allocators are started with nsenter, which enters the
	// host's network namespace only. `ip netns exec` (used without
	// nsenter) also mounts a sysfs of the namespace on /sys, which hides
	// /sys/fs/cgroup: its instances would run unconfined.
	nsenter bool
	// confined: the allocators are expected to give instances cgroups.
	confined bool
	zk       *zktest.Ensemble
	fwd      *allocForwarder
	conn     *zk.Conn
	reg      *registry.Registry
	hosts    []*allocHost
	// undo deletes what the test made (ip arguments), in reverse:
	// nothing of the same names that another run made.
	undo [][]string
}

// allocHost is one host: its namespace and its allocator.
type allocHost struct {
	n        int // 1-based
	id, zone string
	ns       string
	veth     string // the pair's end in the test's namespace
	peer     string // the pair's end in ns
	made     bool   // ns was made by this test
	ip       string
	dir      string // --instances-dir
	out      *testutil.Buffer
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
}

func (a *allocHost) admin() string { return net.JoinHostPort(a.ip, allocAdminPort) }

// startAllocHosts makes the hosts, starts ZooKeeper and an allocator on
// each host offering capacity, and waits until every one is live.
func startAllocHosts(t *testing.T, capacity string) *allocHosts {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ZooKeeper and three allocators in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a bridge, network namespaces and cgroups")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to make the hosts' network namespaces")
	}
	h := &allocHosts{t: t, suffix: fmt.Sprintf("%04x", rand.IntN(1<<16)), capacity: capacity}
	_, err := exec.LookPath("nsenter")
	h.nsenter = err == nil
	h.confined = h.nsenter && (allocDirExists("/sys/fs/cgroup/memory") && allocDirExists("/sys/fs/cgroup/cpu") ||
		allocFileExists("/sys/fs/cgroup/cgroup.controllers"))
	h.subnet = allocFreeSubnet(t)
	h.bridge = "swyb" + h.suffix
	for n := 1; n <= allocHostCount; n++ {
		h.hosts = append(h.hosts, &allocHost{
			n: n, id: fmt.Sprintf("host-%d", n), zone: fmt.Sprintf("zone-%d", n),
			ns:   fmt.Sprintf("swy-%s-%d", h.suffix, n),
			veth: fmt.Sprintf("swyh%s%d", h.suffix, n), peer: fmt.Sprintf("swyn%s%d", h.suffix, n),
			ip:  h.subnet + strconv.Itoa(n+1),
			dir: t.TempDir(), out: &testutil.Buffer{},
		})
	}
	t.Cleanup(h.cleanup)

	h.ipCmd("link", "add", h.bridge, "type", "bridge")
	h.undo = append(h.undo, []string{"link", "del", h.bridge})
	h.ipCmd("addr", "add", h.subnet+"1/24", "dev", h.bridge)
	h.ipCmd("link", "set", h.bridge, "up")
	for _, a := range h.hosts {
		h.ipCmd("netns", "add", a.ns)
		h.undo = append(h.undo, []string{"netns", "del", a.ns})
		a.made = true
		h.ipCmd("link", "add", a.veth, "type", "veth", "peer", "name", a.peer)
		h.undo = append(h.undo, []string{"link", "del", a.veth})
		h.ipCmd("link", "set", a.peer, "netns", a.ns)
		h.ipCmd("link", "set", a.veth, "master", h.bridge)
		h.ipCmd("link", "set", a.veth, "up")
		h.ipCmd("-n", a.ns, "addr", "add", a.ip+"/24", "dev", a.peer)
		h.ipCmd("-n", a.ns, "link", "set", a.peer, "up")
		h.ipCmd("-n", a.ns, "link", "set", "lo", "up")
	}

	h.zk = zktest.Start(t)
	h.fwd = startAllocForwarder(t, h.subnet+"1:0", h.zk.Server(0))
	h.conn = zktest.Connect(t, h.zk.Servers(), 4*time.Second)
	h.reg = registry.New(h.conn, allocRoot)
	for _, a := range h.hosts {
		h.startAllocator(a)
	}
	return h
}

// allocFreeSubnet picks a 10.213.X.0/24 that no address or route of the
// test's namespace is in.
func allocFreeSubnet(t *testing.T) string {
	t.Helper()
	addrs, _ := exec.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput()
	used := string(addrs) + string(routes)
	for range 100 {
		p := fmt.Sprintf("10.213.%d.", 1+rand.IntN(254))
		if !strings.Contains(used, p) {
			return p
		}
	}
	t.Fatalf("no free 10.213.X.0/24 among:\n%s", used)
	return ""
}

func (h *allocHosts) ipCmd(args ...string) {
	h.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		h.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// startAllocator runs host a's allocator in its namespace and waits until
// this process's live node is there.
func (h *allocHosts) startAllocator(a *allocHost) {
	t := h.t
	t.Helper()
	// The health checks keep their default interval (1s) and the restart
	// flags come all four together: the allocator refuses a health or
	// restart flag given without the others of its group, and the health
	// group cannot be given whole, its healthy threshold having no flag
	// (TestAllocatorTakesOneTimingFlag).
	args := []string{binary, "allocator",
		"--zk", h.fwd.Addr(), "--id", a.id, "--zone", a.zone, "--capacity", h.capacity,
		"--host", a.ip, "--instances-dir", a.dir, "--admin-listen", a.admin(),
		"--session-timeout", allocSessionTimeout.String(),
		"--restart-backoff", "100ms", "--restart-max-backoff", "30s", "--crash-loop", "5", "--crash-loop-window", "2m",
		"--log-level", "debug"}
	if h.nsenter {
		a.cmd = exec.Command("nsenter", append([]string{"--net=" + allocNetnsPath(a.ns), "--"}, args...)...)
	} else {
		a.cmd = exec.Command("ip", append([]string{"netns", "exec", a.ns}, args...)...)
	}
	started := time.Now()
	fmt.Fprintf(a.out, "=== %s: starting the allocator of %s\n", started.Format("15:04:05.000"), a.id)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting the allocator of %s: %v", a.id, err)
	}
	done := make(chan struct{})
	a.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(a.cmd)
	testutil.EventuallyErr(t, 30*time.Second, a.id+"'s allocator live", func() error {
		select {
		case <-done:
			t.Fatalf("the allocator of %s exited at start: %v\n%s", a.id, a.cmd.ProcessState, a.out.String())
		default:
		}
		v, err := h.reg.Read(a.id)
		if err != nil {
			return err
		}
		switch l := v.Live; {
		case l == nil:
			return errors.New("no live node")
		case l.StartedAt.Before(started.Add(-time.Second)):
			return fmt.Errorf("live node of an earlier allocator (started %v)", l.StartedAt)
		case l.Host != a.ip || l.Addr != a.admin():
			return fmt.Errorf("live node %+v; want host %s, admin %s", *l, a.ip, a.admin())
		}
		return nil
	})
}

// killAllocator sends SIGKILL to host a's allocator and waits for its end.
func (h *allocHosts) killAllocator(a *allocHost) {
	h.t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("the allocator of %s still runs 10s after SIGKILL", a.id)
	}
}

func allocNetnsPath(ns string) string {
	if p := "/run/netns/" + ns; allocFileExists(p) {
		return p
	}
	return "/var/run/netns/" + ns
}

// instID names an instance on host a.
func (h *allocHosts) instID(a *allocHost, name string) string {
	return fmt.Sprintf("i-%s-%d-%s", h.suffix, a.n, name)
}

func allocDeployment(inst string) string { return "dep-" + inst }

// assign assigns instance inst (64 MiB) to host a, reading again when a
// concurrent assignment to a changed it meanwhile.
func (h *allocHosts) assign(a *allocHost, inst string) error {
	as := registry.Assignment{Deployment: allocDeployment(inst), Kind: "es", Generation: "blue", Zone: a.zone, MemoryBytes: allocInstanceMem}
	var err error
	for range 10 {
		if err = h.reg.Assign(a.id, inst, as); !errors.Is(err, registry.ErrConflict) {
			return err
		}
	}
	return err
}

// status is instance inst's status on host a, from ZooKeeper.
func (h *allocHosts) status(a *allocHost, inst string) (*registry.Status, error) {
	v, err := h.reg.Read(a.id)
	if err != nil {
		return nil, err
	}
	if st := v.Statuses[inst]; st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("%s has no status for %s", a.id, inst)
}

// adminStatus is host a's allocator's /status, read through the bridge.
func (h *allocHosts) adminStatus(a *allocHost) (*allocator.StatusDoc, error) {
	resp, err := allocHTTP.Get("http://" + a.admin() + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /status: %s", a.id, resp.Status)
	}
	var doc allocator.StatusDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s /status: %w", a.id, err)
	}
	return &doc, nil
}

func allocAdminInstance(doc *allocator.StatusDoc, inst string) *allocator.InstanceDoc {
	for i := range doc.Instances {
		if doc.Instances[i].ID == inst {
			return &doc.Instances[i]
		}
	}
	return nil
}

// cgroupParents are the directories of host a's allocator's parent
// cgroup (switchyard-<id>) in every hierarchy.
func (h *allocHosts) cgroupParents(a *allocHost) []string {
	name := "switchyard-" + a.id
	var out []string
	for _, pat := range []string{"", "*", "*/*", "*/*/*", "*/*/*/*"} {
		m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", pat, name))
		out = append(out, m...)
	}
	return out
}

// cleanup kills the allocators and every process left in the hosts'
// namespaces (the instances outlive their allocator by design), deletes
// the namespaces, veths and bridge, and removes the cgroups of this run's
// instances and, when they are empty, their parents.
func (h *allocHosts) cleanup() {
	t := h.t
	for _, a := range h.hosts {
		if a.cmd == nil || a.cmd.Process == nil {
			continue
		}
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			select {
			case <-a.done:
			case <-time.After(10 * time.Second):
				t.Errorf("the allocator of %s still runs 10s after SIGKILL", a.id)
			}
		}
	}
	var pids []int
	for _, a := range h.hosts {
		ino, ok := allocNetnsInode(allocNetnsPath(a.ns))
		if !a.made || !ok {
			continue
		}
		states, _ := filepath.Glob(filepath.Join(a.dir, "*", "state.json"))
		for _, f := range states {
			b, err := os.ReadFile(f)
			var st struct {
				Pid int `json:"pid"`
			}
			if err == nil && json.Unmarshal(b, &st) == nil && st.Pid > 0 && allocInNetns(st.Pid, ino) {
				pids = append(pids, st.Pid)
			}
		}
		// Whatever else runs there: an instance started just before its
		// allocator was killed, before its state was saved.
		out, _ := exec.Command("ip", "netns", "pids", a.ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for allocAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if allocAlive(pid) {
			t.Errorf("pid %d still runs 10s after SIGKILL", pid)
		}
	}
	if t.Failed() {
		for _, a := range h.hosts {
			t.Logf("allocator %s output, last lines:\n%s", a.id, allocTail(a.out.String(), 200))
		}
	}
	for i := len(h.undo) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", h.undo[i]...).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Errorf("ip %s: %v: %s", strings.Join(h.undo[i], " "), err, out)
		}
	}
	// rmdir takes empty groups only: the instances' groups first, then
	// their parent (which another run's allocator may still use).
	for _, a := range h.hosts {
		for _, p := range h.cgroupParents(a) {
			groups, _ := os.ReadDir(p)
			for _, g := range groups {
				if g.IsDir() && strings.HasPrefix(g.Name(), "i-"+h.suffix+"-") {
					allocRmdir(t, filepath.Join(p, g.Name()))
				}
			}
			_ = os.Remove(p)
		}
	}
}

// allocRmdir removes an empty cgroup; a group whose last process has just
// ended may be busy for a moment.
func allocRmdir(t *testing.T, dir string) {
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
	}
	t.Errorf("removing cgroup %s: %v", dir, err)
}

// allocNetnsInode identifies a network namespace by its nsfs file.
func allocNetnsInode(path string) ([2]uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{st.Dev, st.Ino}, true
}

// allocInNetns reports whether process pid is in the network namespace
// ino: a pid read from a state file may have been given to another
// process since.
func allocInNetns(pid int, ino [2]uint64) bool {
	got, ok := allocNetnsInode("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return ok && got == ino
}

func allocTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func allocDirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func allocFileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// allocAlive reports whether pid runs (a zombie does not).
func allocAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	f, err := allocProcStat(pid)
	return err == nil && f[0] != "Z"
}

// allocProcStat is /proc/<pid>/stat from its third field (the state) on:
// field N is at index N-3.
func allocProcStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("pid %d: short stat", pid)
	}
	return f, nil
}

// allocCPUTicks is the CPU time pid used, user and system, in clock ticks
// (100 a second).
func allocCPUTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := allocProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("pid %d: stat utime %q stime %q", pid, f[14-3], f[15-3])
	}
	return utime + stime
}

// allocRSS is pid's resident set size (VmRSS) in bytes.
func allocRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("pid %d: no VmRSS", pid)
	return 0
}

// allocHTTP asks instances and admin listeners, a new connection each
// time.
var allocHTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// allocReply is what the built-in instance program answers GET / with.
type allocReply struct {
	Instance   string `json:"instance"`
	Deployment string `json:"deployment"`
	Zone       string `json:"zone"`
	Generation string `json:"generation"`
}

// allocGet asks the instance at addr what it is; it must say it is inst
// of its deployment on host a's zone.
func allocGet(addr string, a *allocHost, inst string) error {
	resp, err := allocHTTP.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", addr, resp.Status, b)
	}
	var rep allocReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("GET %s: %v: %q", addr, err, b)
	}
	if rep.Instance != inst || rep.Deployment != allocDeployment(inst) || rep.Zone != a.zone || rep.Generation != "blue" {
		return fmt.Errorf("GET %s: answered %+v; want instance %s, deployment %s, zone %s, generation blue",
			addr, rep, inst, allocDeployment(inst), a.zone)
	}
	return nil
}

// allocPlaced is an instance the test assigned.
type allocPlaced struct {
	a        *allocHost
	id       string
	assigned time.Time // when its Assign returned
	st       registry.Status
}

// assignAndServe assigns each instance and waits until every one runs and
// answers through the bridge. It checks that each status went starting,
// then running, and names the host's address.
func (h *allocHosts) assignAndServe(insts []*allocPlaced) {
	t := h.t
	t.Helper()
	for _, in := range insts {
		if err := h.assign(in.a, in.id); err != nil {
			t.Fatal(err)
		}
		in.assigned = time.Now()
	}
	seen := make([][]registry.State, len(insts))
	served := make([]time.Duration, len(insts))
	testutil.EventuallyErr(t, 20*time.Second, "every instance running and answering", func() error {
		views := map[string]*registry.View{}
		var pending []string
		for i, in := range insts {
			v := views[in.a.id]
			if v == nil {
				var err error
				if v, err = h.reg.Read(in.a.id); err != nil {
					return err
				}
				views[in.a.id] = v
			}
			st := v.Statuses[in.id]
			if st == nil {
				pending = append(pending, in.id+": no status")
				continue
			}
			if n := len(seen[i]); n == 0 || seen[i][n-1] != st.State {
				seen[i] = append(seen[i], st.State)
			}
			in.st = *st
			if served[i] == 0 && st.Addr != "" && allocGet(st.Addr, in.a, in.id) == nil {
				served[i] = time.Since(in.assigned)
			}
			if st.State != registry.StateRunning || served[i] == 0 {
				pending = append(pending, fmt.Sprintf("%s: %+v, answered: %v", in.id, *st, served[i] != 0))
			}
		}
		if len(pending) > 0 {
			return errors.New(strings.Join(pending, "; "))
		}
		return nil
	})
	for i, in := range insts {
		t.Logf("%s on %s: answering %v after its assignment, states %v", in.id, in.a.id, served[i].Round(time.Millisecond), seen[i])
		if !slices.Equal(seen[i], []registry.State{registry.StateStarting, registry.StateRunning}) {
			t.Errorf("%s went through %v; want starting, then running", in.id, seen[i])
		}
		if err := allocGet(in.st.Addr, in.a, in.id); err != nil {
			t.Error(err)
		}
		st := in.st
		if host, _, _ := net.SplitHostPort(st.Addr); host != in.a.ip {
			t.Errorf("%s's address %s is not on its host's %s", in.id, st.Addr, in.a.ip)
		}
		if st.Pid <= 0 || !allocAlive(st.Pid) || st.Restarts != 0 || st.Deployment != allocDeployment(in.id) || st.Generation != "blue" {
			t.Errorf("%s's status %+v", in.id, st)
		}
		if h.confined {
			if st.Unconfined {
				t.Errorf("%s runs unconfined", in.id)
			}
			cg, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
			if !strings.Contains(string(cg), "/switchyard-"+in.a.id+"/"+in.id+"\n") {
				t.Errorf("%s (pid %d) is not in its cgroup:\n%s", in.id, st.Pid, cg)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// Each allocator runs what is assigned to it, on its own host's address,
// reachable from elsewhere. An allocator killed leaves its instances
// serving; its live node goes with its session; started again, it adopts
// them: same processes, no restart.
func TestAllocatorHostsRunAndAdoptInstances(t *testing.T) {
	h := startAllocHosts(t, "1GiB")
	var insts []*allocPlaced
	for _, a := range h.hosts {
		insts = append(insts, &allocPlaced{a: a, id: h.instID(a, "a")})
	}
	victim := h.hosts[1]
	insts = append(insts, &allocPlaced{a: victim, id: h.instID(victim, "b")})
	h.assignAndServe(insts)

	for _, a := range h.hosts {
		doc, err := h.adminStatus(a)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if a == victim {
			want = 2
		}
		if doc.ID != a.id || doc.Zone != a.zone || !doc.ZooKeeper || len(doc.Instances) != want ||
			doc.AssignedBytes != int64(want)*allocInstanceMem {
			t.Errorf("%s /status: %+v", a.id, *doc)
		}
		if h.confined && doc.Cgroups != "v1" && doc.Cgroups != "v2" {
			t.Errorf("%s confines instances with %q", a.id, doc.Cgroups)
		}
	}

	livePath := h.reg.Path(victim.id) + "/live"
	ok, before, err := h.conn.Exists(livePath)
	if err != nil || !ok {
		t.Fatalf("%s: exists %v, %v", livePath, ok, err)
	}
	killed := time.Now()
	h.killAllocator(victim)
	// Every instance answers, every 200ms, until the live node has gone
	// and for a second more.
	var gone time.Duration
	for {
		for _, in := range insts {
			if err := allocGet(in.st.Addr, in.a, in.id); err != nil {
				t.Fatalf("%v after %s's allocator was killed: %v", time.Since(killed).Round(time.Millisecond), victim.id, err)
			}
		}
		if gone == 0 {
			if ok, _, err := h.conn.Exists(livePath); err == nil && !ok {
				gone = time.Since(killed)
			}
		}
		if gone != 0 && time.Since(killed) > gone+time.Second {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("%s still there 15s after its allocator was killed", livePath)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s's live node gone %v after its allocator was killed (session timeout %v)", victim.id, gone.Round(time.Millisecond), allocSessionTimeout)
	if gone < allocSessionTimeout/2 {
		t.Errorf("live node gone after %v: before the session could time out", gone)
	}

	restarted := time.Now()
	h.startAllocator(victim)
	if ok, after, err := h.conn.Exists(livePath); err != nil || !ok {
		t.Errorf("%s after the restart: exists %v, %v", livePath, ok, err)
	} else if after.EphemeralOwner == before.EphemeralOwner {
		t.Errorf("%s after the restart is still of session 0x%x", livePath, before.EphemeralOwner)
	}
	for _, in := range insts {
		if in.a != victim {
			continue
		}
		st := &registry.Status{}
		testutil.EventuallyErr(t, 15*time.Second, in.id+" adopted and running", func() error {
			var err error
			if st, err = h.status(victim, in.id); err != nil {
				return err
			}
			if st.State != registry.StateRunning || !st.Since.After(restarted) {
				return fmt.Errorf("status %+v", *st)
			}
			return nil
		})
		if st.Pid != in.st.Pid || st.Restarts != 0 || st.Addr != in.st.Addr {
			t.Errorf("%s after its allocator's restart: %+v; want pid %d, no restart, at %s", in.id, *st, in.st.Pid, in.st.Addr)
		}
		if err := allocGet(st.Addr, victim, in.id); err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(victim.out.String(), "adopted a running instance"); n != 2 {
		t.Errorf("%s's allocator logged %d adoptions; want 2", victim.id, n)
	}
	for _, in := range insts {
		if in.a == victim {
			continue
		}
		if st, err := h.status(in.a, in.id); err != nil || st.Pid != in.st.Pid || st.State != registry.StateRunning {
			t.Errorf("%s on %s, untouched: %v %+v", in.id, in.a.id, err, st)
		}
	}
}

// With ZooKeeper gone for 30 seconds every instance keeps serving, and an
// instance that ends meanwhile is restarted; once ZooKeeper is back every
// allocator is live again and the statuses say what happened.
func TestAllocatorZooKeeperOutage(t *testing.T) {
	h := startAllocHosts(t, "1GiB")
	var insts []*allocPlaced
	for _, a := range h.hosts {
		insts = append(insts, &allocPlaced{a: a, id: h.instID(a, "a")}, &allocPlaced{a: a, id: h.instID(a, "b")})
	}
	h.assignAndServe(insts)
	victim := insts[len(insts)-1]

	const outage = 30 * time.Second
	const killAt = 5 * time.Second // past the session timeout
	h.zk.Stop(0)
	stopped := time.Now()
	var (
		killed     bool
		newPid     int
		back       time.Duration       // when the victim answered again
		polls      int                 // rounds of GETs
		fails      []string            // GETs that failed
		zkDownSeen = map[string]bool{} // allocators whose /status said ZooKeeper was lost
	)
	for time.Since(stopped) < outage {
		polls++
		for _, in := range insts {
			err := allocGet(in.st.Addr, in.a, in.id)
			if in != victim || !killed || back != 0 {
				if err != nil {
					fails = append(fails, fmt.Sprintf("%v: %v", time.Since(stopped).Round(time.Millisecond), err))
				}
				continue
			}
			// Killed: it must be back, a new process, restarted once.
			doc, derr := h.adminStatus(in.a)
			if derr != nil {
				fails = append(fails, fmt.Sprintf("%v: %v", time.Since(stopped).Round(time.Millisecond), derr))
				continue
			}
			if d := allocAdminInstance(doc, in.id); err == nil && d != nil && d.State == registry.StateRunning &&
				d.Restarts == 1 && d.Pid != in.st.Pid && d.Pid > 0 {
				back, newPid = time.Since(stopped), d.Pid
			}
		}
		if since := time.Since(stopped); since > killAt {
			for _, a := range h.hosts {
				if doc, err := h.adminStatus(a); err == nil && !doc.ZooKeeper {
					zkDownSeen[a.id] = true
				}
			}
			if !killed {
				if err := syscall.Kill(victim.st.Pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
				t.Logf("%v into the outage: killed %s (pid %d)", since.Round(time.Millisecond), victim.id, victim.st.Pid)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("ZooKeeper down for %v: %d rounds of GETs to %d instances, %d failed; %s answering again %v into the outage (pid %d)",
		time.Since(stopped).Round(time.Millisecond), polls, len(insts), len(fails), victim.id, back.Round(time.Millisecond), newPid)
	for _, f := range fails {
		t.Errorf("an instance failed while ZooKeeper was down: %s", f)
	}
	if back == 0 {
		t.Errorf("%s, killed while ZooKeeper was down, was not running again, restarted once, before ZooKeeper came back", victim.id)
	}
	for _, a := range h.hosts {
		if !zkDownSeen[a.id] {
			t.Errorf("%s's /status never said ZooKeeper was lost", a.id)
		}
	}

	h.zk.Start(0)
	h.zk.WaitServing(0)
	restarted := time.Now()
	testutil.EventuallyErr(t, 30*time.Second, "every allocator live again", func() error {
		for _, a := range h.hosts {
			v, err := h.reg.Read(a.id)
			if err != nil {
				return err
			}
			if v.Live == nil {
				return fmt.Errorf("%s has no live node", a.id)
			}
		}
		return nil
	})
	live := time.Since(restarted)
	testutil.EventuallyErr(t, 30*time.Second, "the statuses current", func() error {
		for _, in := range insts {
			st, err := h.status(in.a, in.id)
			if err != nil {
				return err
			}
			want := registry.Status{State: registry.StateRunning, Addr: in.st.Addr, Pid: in.st.Pid}
			if in == victim {
				want.Pid, want.Restarts = newPid, 1
			}
			if st.State != want.State || st.Addr != want.Addr || st.Pid != want.Pid || st.Restarts != want.Restarts {
				return fmt.Errorf("%s: %+v; want %s, pid %d, %d restarts", in.id, *st, want.State, want.Pid, want.Restarts)
			}
		}
		return nil
	})
	t.Logf("after ZooKeeper was back: every allocator live within %v, statuses current within %v",
		live.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	// ZooKeeper keeps sessions over its restart, and their ephemeral
	// nodes with them: a live node proves a session only once it
	// outlived a session timeout with the allocator connected.
	testutil.EventuallyErr(t, 30*time.Second, "every allocator connected to ZooKeeper", func() error {
		for _, a := range h.hosts {
			doc, err := h.adminStatus(a)
			if err != nil {
				return err
			}
			if !doc.ZooKeeper {
				return fmt.Errorf("%s: no ZooKeeper session", a.id)
			}
		}
		return nil
	})
	time.Sleep(allocSessionTimeout + time.Second)
	for _, a := range h.hosts {
		if v, err := h.reg.Read(a.id); err != nil || v.Live == nil {
			t.Errorf("%s's live node %v after ZooKeeper was back: %v", a.id, allocSessionTimeout+time.Second, err)
		}
	}
	for _, in := range insts {
		if err := allocGet(in.st.Addr, in.a, in.id); err != nil {
			t.Error(err)
		}
	}
}

// Every health and restart flag has a default of its own
// (docs/reference.md): one given alone is taken, the others keep their
// defaults, and the allocator starts.
func TestAllocatorTakesOneTimingFlag(t *testing.T) {
	zkAddr := testutil.RefusingAddr(t) // ZooKeeper never answers: the allocator keeps trying
	for _, flag := range [][]string{
		{"--health-interval", "200ms"}, {"--health-timeout", "500ms"}, {"--unhealthy-after", "5"},
		{"--start-timeout", "10s"}, {"--restart-backoff", "100ms"}, {"--restart-max-backoff", "10s"},
		{"--crash-loop", "3"}, {"--crash-loop-window", "1m"},
	} {
		t.Run(strings.TrimPrefix(flag[0], "--"), func(t *testing.T) {
			t.Parallel()
			out := &testutil.Buffer{}
			cmd := exec.Command(binary, append([]string{"allocator", "--zk", zkAddr, "--id", "flags", "--zone", "zone-1",
				"--capacity", "1GiB", "--instances-dir", t.TempDir(), "--admin-listen", "-", "--cgroups=false",
				"--log-level", "debug"}, flag...)...)
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
			})
			// Past its configuration, the allocator dials ZooKeeper and
			// logs the refusals.
			testutil.Eventually(t, 15*time.Second, "the allocator running, dialing ZooKeeper", func() bool {
				select {
				case <-done:
					t.Fatalf("switchyard allocator %s exited (%v):\n%s", strings.Join(flag, " "), cmd.ProcessState, out.String())
				default:
				}
				return strings.Contains(out.String(), "zookeeper: ")
			})
		})
	}
}

// allocPercentile is the p-th percentile (nearest rank) of sorted ds.
func allocPercentile(ds []time.Duration, p int) time.Duration {
	i := (p*len(ds)+99)/100 - 1
	return ds[max(i, 0)]
}

// allocTimeToServe waits until in has a status with an address, then
// until it answers there, and returns the time since its assignment.
func (h *allocHosts) allocTimeToServe(in *allocPlaced, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	path := h.reg.Path(in.a.id) + "/status/" + in.id
	for in.st.Addr == "" {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: no status with an address within %v", in.id, timeout)
		}
		data, _, ch, err := h.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			if ok, _, ch, err = h.conn.ExistsW(path); err == nil && ok {
				continue
			}
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if data != nil {
			if err := json.Unmarshal(data, &in.st); err != nil {
				return 0, fmt.Errorf("%s: status %q: %v", in.id, data, err)
			}
			if in.st.Addr != "" {
				break
			}
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
		}
	}
	for {
		err := allocGet(in.st.Addr, in.a, in.id)
		if err == nil {
			return time.Since(in.assigned), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: not answering within %v: %v", in.id, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Figures: 50 instances assigned at once over the three allocators, the
// time from each assignment to the instance answering, and what the
// allocators take, in memory and CPU, to keep them running. Then every
// assignment removed: every instance stopped, its directory and status
// gone.
func TestAllocatorFigures(t *testing.T) {
	h := startAllocHosts(t, "2GiB")
	const n = 50
	insts := make([]*allocPlaced, n)
	for i := range insts {
		a := h.hosts[i%len(h.hosts)]
		insts[i] = &allocPlaced{a: a, id: h.instID(a, fmt.Sprintf("f%02d", i))}
	}
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for hi := range h.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := hi; i < n; i += len(h.hosts) {
				in := insts[i]
				if errs[i] = h.assign(in.a, in.id); errs[i] != nil {
					continue
				}
				in.assigned = time.Now()
				wg.Add(1)
				go func() {
					defer wg.Done()
					took[i], errs[i] = h.allocTimeToServe(in, 60*time.Second)
				}()
			}
		}()
	}
	wg.Wait()
	all := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("assignment to serving, %d instances assigned at once over %d allocators: p50 %v, p99 %v, max %v (all serving %v after the first assignment)",
		n, len(h.hosts), allocPercentile(sorted, 50).Round(time.Millisecond), allocPercentile(sorted, 99).Round(time.Millisecond),
		sorted[n-1].Round(time.Millisecond), all.Round(time.Millisecond))

	pids := map[string]int{}
	testutil.EventuallyErr(t, 30*time.Second, "every instance running", func() error {
		for _, a := range h.hosts {
			v, err := h.reg.Read(a.id)
			if err != nil {
				return err
			}
			for _, in := range insts {
				if in.a != a {
					continue
				}
				st := v.Statuses[in.id]
				if st == nil || st.State != registry.StateRunning {
					return fmt.Errorf("%s: %+v", in.id, st)
				}
				if host, _, _ := net.SplitHostPort(st.Addr); host != a.ip || st.Pid <= 0 || st.Restarts != 0 {
					t.Fatalf("%s: status %+v", in.id, *st)
				}
				pids[in.id] = st.Pid
			}
		}
		return nil
	})

	// Steady state: each allocator checks each of its instances' health
	// every second and nothing else happens.
	const steady = 20 * time.Second
	before := make([]uint64, len(h.hosts))
	for i, a := range h.hosts {
		if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(a.cmd.Process.Pid) + "/comm"); strings.TrimSpace(string(comm)) != "switchyard" {
			t.Fatalf("pid %d of %s's allocator is %q", a.cmd.Process.Pid, a.id, comm)
		}
		before[i] = allocCPUTicks(t, a.cmd.Process.Pid)
	}
	time.Sleep(steady)
	for i, a := range h.hosts {
		pid := a.cmd.Process.Pid
		ticks := allocCPUTicks(t, pid) - before[i]
		count := 0
		var instRSS int64
		for _, in := range insts {
			if in.a == a {
				count++
				instRSS += allocRSS(t, pids[in.id])
			}
		}
		cpu := time.Duration(ticks) * 10 * time.Millisecond
		t.Logf("allocator %s with %d instances: RSS %.1f MiB, CPU %v in %v (%.2f%% of a CPU); its instances' RSS %.0f MiB in all",
			a.id, count, float64(allocRSS(t, pid))/(1<<20), cpu, steady, 100*cpu.Seconds()/steady.Seconds(), float64(instRSS)/(1<<20))
	}
	for _, a := range h.hosts {
		v, err := h.reg.Read(a.id)
		if err != nil {
			t.Fatal(err)
		}
		for id, st := range v.Statuses {
			if st.State != registry.StateRunning || st.Restarts != 0 || st.Pid != pids[id] {
				t.Errorf("%s after the steady state: %+v", id, *st)
			}
		}
	}

	unassigned := time.Now()
	for _, in := range insts {
		if err := h.reg.Unassign(in.a.id, in.id); err != nil {
			t.Fatal(err)
		}
	}
	testutil.EventuallyErr(t, 30*time.Second, "every instance stopped and removed", func() error {
		for _, in := range insts {
			if allocAlive(pids[in.id]) {
				return fmt.Errorf("%s (pid %d) still runs", in.id, pids[in.id])
			}
			if allocFileExists(filepath.Join(in.a.dir, in.id)) {
				return fmt.Errorf("%s's directory is still there", in.id)
			}
		}
		for _, a := range h.hosts {
			v, err := h.reg.Read(a.id)
			if err != nil {
				return err
			}
			if len(v.Statuses) > 0 || len(v.Assignments) > 0 {
				return fmt.Errorf("%s: %d statuses, %d assignments left", a.id, len(v.Statuses), len(v.Assignments))
			}
		}
		return nil
	})
	t.Logf("every instance stopped, its directory and status gone, %v after the assignments were removed", time.Since(unassigned).Round(time.Millisecond))
	for _, a := range h.hosts {
		if h.confined {
			for _, p := range h.cgroupParents(a) {
				for _, in := range insts {
					if in.a == a && allocFileExists(filepath.Join(p, in.id)) {
						t.Errorf("%s's cgroup %s left behind", in.id, filepath.Join(p, in.id))
					}
				}
			}
		}
		if doc, err := h.adminStatus(a); err != nil || len(doc.Instances) != 0 || doc.AssignedBytes != 0 {
			t.Errorf("%s /status after every assignment was removed: %v %+v", a.id, err, doc)
		}
	}
}

// allocForwarder forwards TCP connections from the hosts, on the
// bridge's address, to ZooKeeper on loopback. Closing it cuts every
// forwarded connection.
type allocForwarder struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startAllocForwarder listens on listen and forwards to target until the
// test ends.
func startAllocForwarder(t *testing.T, listen, target string) *allocForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("forwarder to ZooKeeper: %v", err)
	}
	f := &allocForwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

// Addr is the address the hosts reach ZooKeeper at.
func (f *allocForwarder) Addr() string { return f.ln.Addr().String() }

// track records c for close; false when the forwarder is closed.
func (f *allocForwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *allocForwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *allocForwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			return
		}
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go f.forward(c)
	}
}

func (f *allocForwarder) forward(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	s, err := net.DialTimeout("tcp", f.target, 2*time.Second)
	if err != nil {
		return // ZooKeeper is down: the client sees its connection closed
	}
	if !f.track(s) {
		s.Close()
		return
	}
	defer f.untrack(s)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); s.Close(); c.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); c.Close(); s.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// close stops forwarding and cuts every forwarded connection.
func (f *allocForwarder) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}
