package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/loadtest"
	"github.com/switchyard/switchyard/routes/routeclient"
)

// routePath is ZooKeeper, route servers and the tools around them, as
// processes.
type routePath struct {
	t      *testing.T
	zk     *zktest.Ensemble
	routes string // routes file applied with yardctl
	rs     []*proc
	// startWait bounds how long a route server may take to serve its
	// first table. Default 15s.
	startWait time.Duration
	// rsArgs are more flags for every route server started.
	rsArgs []string
}

func newRoutePath(t *testing.T, zkNodes int) *routePath {
	if testing.Short() {
		t.Skip("starts ZooKeeper")
	}
	rp := &routePath{t: t, routes: filepath.Join(t.TempDir(), "routes.yaml")}
	if zkNodes == 1 {
		rp.zk = zktest.Start(t)
	} else {
		rp.zk = zktest.StartEnsemble(t, zkNodes)
	}
	return rp
}

func (rp *routePath) zkFlag() string { return strings.Join(rp.zk.Servers(), ",") }

// apply writes the routes file and applies it with yardctl.
func (rp *routePath) apply(addrs ...string) time.Time {
	rp.t.Helper()
	writeRoutes(rp.t, rp.routes, addrs...)
	out, err := exec.Command(yardctl, "--zk", rp.zkFlag(), "apply", "-f", rp.routes).CombinedOutput()
	if err != nil {
		rp.t.Fatalf("yardctl apply: %v\n%s", err, out)
	}
	return time.Now()
}

// startRouteServer runs a route server process and waits until it serves a
// table.
func (rp *routePath) startRouteServer(name string) *proc {
	rp.t.Helper()
	return rp.startRouteServerVia(name, rp.zkFlag())
}

// startRouteServerVia is startRouteServer with its own --zk value (for
// instance a zktest.Proxy in front of the ensemble).
func (rp *routePath) startRouteServerVia(name, zkAddrs string) *proc {
	rp.t.Helper()
	p := &proc{addr: testutil.FreeAddr(rp.t), stderr: &testutil.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"route-server", "--zk", zkAddrs, "--listen", p.addr, "--name", name,
		"--max-wait", "5s", "--session-timeout", "4s"}, rp.rsArgs...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		rp.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	rp.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if rp.t.Failed() {
			rp.t.Logf("route server %s stderr:\n%s", name, p.stderr.String())
		}
	})
	wait := rp.startWait
	if wait == 0 {
		wait = 15 * time.Second
	}
	testutil.Eventually(rp.t, wait, "route server "+name+" serves a table", func() bool {
		status, _ := httpGet("http://" + p.addr + "/_health")
		return status == 200
	})
	rp.rs = append(rp.rs, p)
	return p
}

func (rp *routePath) rsURLs() string {
	var urls []string
	for _, p := range rp.rs {
		urls = append(urls, "http://"+p.addr)
	}
	return strings.Join(urls, ",")
}

// logSays waits up to 5 s for a process's log to hold line (the log
// reaches the test through a pipe, a little after the event it reports)
// and fails the test with the log if it does not.
func logSays(t *testing.T, log *testutil.Buffer, line, what string) {
	t.Helper()
	testutil.EventuallyErr(t, 5*time.Second, what, func() error {
		if l := log.String(); !strings.Contains(l, line) {
			return fmt.Errorf("no %q in the log:\n%s", line, l)
		}
		return nil
	})
}

// answeredBy is the body of a request to the deployment (the backends
// answer with their name).
func answeredBy(p *proc) string {
	_, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", depID)
	return body
}

func namedBackend(t *testing.T, name string) *backend {
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
}

// constantLoad runs bounded constant-rate load at the proxy until stopped.
func constantLoad(t *testing.T, p *proc, rate float64, d time.Duration) *loadtest.Load {
	return constantLoadConns(t, p, rate, d, 8)
}

// constantLoadConns is constantLoad over conns connections: enough for the
// rate times the slowest expected response, or requests queue.
func constantLoadConns(t *testing.T, p *proc, rate float64, d time.Duration, conns int) *loadtest.Load {
	t.Helper()
	l, err := loadtest.Start(context.Background(), loadtest.Config{
		URL: "http://" + p.addr + "/", Header: http.Header{"X-Found-Cluster": {depID}},
		Rate: rate, Connections: conns, Duration: d, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func checkNoFailures(t *testing.T, what string, r *loadtest.Report) {
	t.Helper()
	// Requests never sent (expired in the queue, or still queued at the
	// end) count as failed too: the proxy kept them waiting. Requests in
	// flight when the test itself stopped the load (Canceled) do not.
	failed := r.Sent - r.Canceled - r.Status[200] + r.Expired + r.Unsent
	t.Logf("%s: %d requests sent, %d answered 200, %d expired, %d unsent, %d in flight at the stop, statuses %v, errors %v, p99 %v",
		what, r.Sent, r.Status[200], r.Expired, r.Unsent, r.Canceled, r.Status, r.Errors, r.Latency.P99)
	if r.Sent == 0 || failed != 0 {
		t.Errorf("%s: %d of %d requests failed; want 0", what, failed, r.Sent+r.Unsent)
	}
}

func rsStatus(t *testing.T, p *proc) map[string]any {
	t.Helper()
	_, body := httpGet("http://" + p.addr + "/status")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("route server /status: %v: %s", err, body)
	}
	return st
}

// A nested edit (an instance's address) written with yardctl reaches the
// proxy within 1 s (the test fails above 5 s: a loaded machine can stall
// ZooKeeper's watch or a process for seconds), through either route
// server; with one route server killed the other carries on.
func TestRoutePathNestedEditsAndRouteServerFailover(t *testing.T) {
	rp := newRoutePath(t, 1)
	one, two, three := namedBackend(t, "one"), namedBackend(t, "two"), namedBackend(t, "three")
	rp.apply(one.addr)
	rs1 := rp.startRouteServer("rs1")
	rp.startRouteServer("rs2")
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", t.TempDir(), "--proxy-id", "p1")
	if got := answeredBy(p); got != "one" {
		t.Fatalf("answered by %q; want one", got)
	}

	// A reload or log rotation signal (systemctl reload, logrotate) sent
	// to a process with nothing to reload or reopen is logged, not fatal.
	p.signal(t, syscall.SIGHUP)
	rs1.signal(t, syscall.SIGHUP)
	rs1.signal(t, syscall.SIGUSR1)
	logSays(t, p.stderr, `"signal":"SIGHUP"`, "the proxy logs the SIGHUP it ignores")
	logSays(t, rs1.stderr, `"signal":"SIGHUP"`, "the route server logs the SIGHUP it ignores")
	logSays(t, rs1.stderr, `"signal":"SIGUSR1"`, "the route server logs the SIGUSR1 it ignores")
	for _, x := range []*proc{p, rs1} {
		select {
		case err := <-x.done:
			x.done <- err // for the cleanup
			t.Fatalf("a process ended after SIGHUP or SIGUSR1: %v", err)
		default:
		}
	}

	written := rp.apply(two.addr)
	took := testutil.Eventually(t, 15*time.Second, "the edit reaches the proxy", func() bool { return answeredBy(p) == "two" })
	t.Logf("instance address edit: yardctl apply returned to proxy applied in %v (target 1s)", took)
	if took > 5*time.Second {
		t.Errorf("nested edit took %v to reach the proxy; want within 1s", took)
	}
	_ = written

	rs1.cmd.Process.Signal(syscall.SIGKILL)
	<-rs1.done
	rp.apply(three.addr)
	took = testutil.Eventually(t, 10*time.Second, "the edit reaches the proxy through the other route server", func() bool { return answeredBy(p) == "three" })
	t.Logf("edit with one route server killed: applied in %v", took)

	// The proxy's admin status shows where its table came from.
	_, status := httpGet("http://" + p.admin + "/status")
	if !strings.Contains(status, `"kind": "route-servers"`) || !strings.Contains(status, `"connected": true`) {
		t.Errorf("proxy /status does not show a connected route source:\n%s", status)
	}
}

// Every route server gone and the proxy restarted: it serves the table it
// saved on disk, without a failed request once it reports ready.
func TestProxyRestartsFromDiskWithoutRouteServers(t *testing.T) {
	rp := newRoutePath(t, 1)
	one := namedBackend(t, "one")
	rp.apply(one.addr)
	rs := rp.startRouteServer("rs1")
	cache := t.TempDir()
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache, "--drain-delay", "0s")
	if got := answeredBy(p); got != "one" {
		t.Fatalf("answered by %q; want one", got)
	}
	testutil.Eventually(t, 15*time.Second, "the snapshot is on disk", func() bool {
		_, err := os.Stat(filepath.Join(cache, "routes.snapshot"))
		return err == nil
	})
	rs.cmd.Process.Signal(syscall.SIGKILL)
	<-rs.done
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}

	start := time.Now()
	p2 := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache)
	t.Logf("proxy ready from disk after %v", time.Since(start))
	l := constantLoad(t, p2, 200, 3*time.Second)
	checkNoFailures(t, "served from disk", l.Wait())
	_, status := httpGet("http://" + p2.admin + "/status")
	if !strings.Contains(status, `"from_disk": true`) || !strings.Contains(status, `"stale": true`) {
		t.Errorf("proxy /status does not say the table is from disk and stale:\n%s", status)
	}
}

// ZooKeeper loses quorum for over 10 s under load: no request fails, the
// route servers say stale, and a change made after recovery arrives.
func TestQuorumLossUnderLoad(t *testing.T) {
	rp := newRoutePath(t, 3)
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	rp.apply(one.addr)
	rs1 := rp.startRouteServer("rs1")
	rp.startRouteServer("rs2")
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", t.TempDir())
	l := constantLoad(t, p, 200, 20*time.Second)

	time.Sleep(time.Second)
	rp.zk.Kill(0)
	rp.zk.Kill(1)
	lost := time.Now()
	testutil.Eventually(t, 15*time.Second, "the route servers say stale", func() bool {
		st, _ := rsStatus(t, rs1)["stale"].(bool)
		return st
	})
	time.Sleep(10*time.Second - time.Since(lost))
	rp.zk.Start(0)
	rp.zk.Start(1)
	rp.zk.WaitServing(0)
	rp.zk.WaitServing(1)
	t.Logf("quorum lost for %v", time.Since(lost))

	testutil.Eventually(t, 20*time.Second, "yardctl can write again", func() bool {
		writeRoutes(t, rp.routes, two.addr)
		return exec.Command(yardctl, "--zk", rp.zkFlag(), "apply", "-f", rp.routes).Run() == nil
	})
	testutil.Eventually(t, 10*time.Second, "the change made after recovery reaches the proxy", func() bool { return answeredBy(p) == "two" })
	testutil.Eventually(t, 10*time.Second, "the route servers are fresh again", func() bool {
		st, _ := rsStatus(t, rs1)["stale"].(bool)
		return !st
	})
	checkNoFailures(t, fmt.Sprintf("quorum loss of %v", 10*time.Second), l.Wait())
}

// The route server's ZooKeeper session expires (its link is cut for longer
// than the session timeout) while changes are written: under load no
// request fails, and after the link returns every change made meanwhile
// reaches the proxy. An invalid znode written meanwhile leaves its
// deployment on its last good version.
func TestSessionExpiryAndInvalidZnodeUnderLoad(t *testing.T) {
	rp := newRoutePath(t, 1)
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	rp.apply(one.addr)
	link := zktest.NewProxy(t, rp.zk.Server(0))
	rs := rp.startRouteServerVia("rs1", link.Addr())
	p := startProxyArgs(t, "--route-servers", rp.rsURLs())
	l := constantLoad(t, p, 200, 16*time.Second)
	time.Sleep(time.Second)
	conn := zktest.Connect(t, rp.zk.Servers(), 10*time.Second)
	registered := func(want bool) func() bool {
		return func() bool {
			ok, _, err := conn.Exists("/switchyard/routeservers/rs1")
			return err == nil && ok == want
		}
	}
	testutil.Eventually(t, 15*time.Second, "the route server registers", registered(true))

	link.Block() // longer than the route server's 4s session timeout
	cut := time.Now()
	testutil.Eventually(t, 10*time.Second, "the route server says stale", func() bool {
		st, _ := rsStatus(t, rs)["stale"].(bool)
		return st
	})
	rp.apply(two.addr) // written while the route server cannot see it
	// ZooKeeper expires the session: the registration goes.
	testutil.Eventually(t, 15*time.Second, "the route server's session expires", registered(false))
	link.Unblock()
	t.Logf("link to ZooKeeper cut for %v", time.Since(cut))

	took := testutil.Eventually(t, 15*time.Second, "the change made during the expiry reaches the proxy", func() bool { return answeredBy(p) == "two" })
	t.Logf("change applied %v after the link returned", took)
	logSays(t, rs.stderr, "session expired", "the route server logs the session expiry")

	// An invalid instance znode: the deployment stays on its last good
	// version, and the route server says which znode is wrong.
	bad := "/switchyard/deployments/" + depID + "/instances/i-0002"
	if _, err := conn.Create(bad, []byte(`{"addr": 12}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("writing an invalid instance znode: %v", err)
	}
	testutil.Eventually(t, 15*time.Second, "the route server reports the invalid deployment", func() bool {
		inv, _ := rsStatus(t, rs)["invalid"].(map[string]any)
		_, ok := inv[depID]
		return ok
	})
	if got := answeredBy(p); got != "two" {
		t.Errorf("answered by %q after the invalid znode; want two (last good version)", got)
	}
	checkNoFailures(t, "session expiry", l.Wait())
}

// With --table-hash sum the route server hashes tables by summing the
// deployments' hashes: the proxy checks them, follows changes and keeps
// the table on disk with that hash.
func TestSumHashedTablesThroughTheRoutePath(t *testing.T) {
	rp := newRoutePath(t, 1)
	rp.rsArgs = []string{"--table-hash", "sum"}
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	rp.apply(one.addr)
	rp.startRouteServer("rs1")
	cache := t.TempDir()
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache)
	if got := answeredBy(p); got != "one" {
		t.Fatalf("answered by %q; want one", got)
	}
	rp.apply(two.addr)
	testutil.Eventually(t, 15*time.Second, "the change reaches the proxy", func() bool { return answeredBy(p) == "two" })
	testutil.Eventually(t, 15*time.Second, "the disk copy has the sum hash and the change", func() bool {
		b, err := os.ReadFile(filepath.Join(cache, "routes.snapshot"))
		return err == nil && strings.Contains(string(b), `"hash":"sum:`) && strings.Contains(diskCopy(cache), two.addr)
	})
}

// diskCopy is what a proxy's cache directory holds of its table: the
// snapshot and the journal of the changes since, as text.
func diskCopy(cache string) string {
	snap, _ := os.ReadFile(filepath.Join(cache, routeclient.SnapshotFile))
	journal, _ := os.ReadFile(filepath.Join(cache, routeclient.JournalFile))
	return string(snap) + string(journal)
}
