package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/loadtest"
)

// fleet is ZooKeeper, two route servers, a deployment with a blue and a
// green generation (two instance processes each, one per zone) and
// proxies following the route servers.
type fleet struct {
	t           *testing.T
	rp          *routePath
	blue, green []*instanceProc
	proxies     []*proc
}

// retireGrace is the fleet proxies' --retire-grace. It leaves the slow
// requests of the tests time to finish on a loaded machine, and a stream
// time to be cut well before its end.
const retireGrace = 3 * time.Second

// startFleet starts a fleet with n proxies, blue serving; green instance
// processes get greenEnv.
func startFleet(t *testing.T, n int, greenEnv ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, rp: newRoutePath(t, 1)}
	f.blue = []*instanceProc{startInstance(t, "b1", "zone-a"), startInstance(t, "b2", "zone-b")}
	f.green = []*instanceProc{startInstance(t, "g1", "zone-a", greenEnv...), startInstance(t, "g2", "zone-b", greenEnv...)}
	var b strings.Builder
	fmt.Fprintf(&b, "domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n    serving: {blue: 100, green: 0}\n    instances:\n", depID)
	for _, in := range append(append([]*instanceProc{}, f.blue...), f.green...) {
		gen := "blue"
		if in.name[0] == 'g' {
			gen = "green"
		}
		fmt.Fprintf(&b, "      - {id: %s, addr: %q, zone: %s, generation: %s}\n", in.name, in.addr, in.zone, gen)
	}
	writeFileAtomic(t, f.rp.routes, b.String())
	f.yardctl("apply", "-f", f.rp.routes)
	f.rp.startRouteServer("rs1")
	f.rp.startRouteServer("rs2")
	for i := 0; i < n; i++ {
		f.proxies = append(f.proxies, startProxyArgs(t, "--route-servers", f.rp.rsURLs(), "--proxy-id", fmt.Sprintf("p%d", i+1),
			"--zone", "zone-a", "--cache-dir", t.TempDir(), "--retire-grace", retireGrace.String()))
	}
	return f
}

// yardctl runs yardctl against the fleet's ZooKeeper and returns stdout;
// it fails the test when yardctl does.
func (f *fleet) yardctl(args ...string) string {
	f.t.Helper()
	out, err := f.yardctlErr(args...)
	if err != nil {
		f.t.Fatalf("yardctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (f *fleet) yardctlErr(args ...string) (string, error) {
	cmd := exec.Command(yardctl, append([]string{"--zk", f.rp.zkFlag()}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// load runs constant-rate load at every proxy, tallying who answered.
type fleetLoad struct {
	loads []*loadtest.Load
	mu    sync.Mutex
	by    map[string]int64 // X-Found-Handling-Instance -> responses
}

func (f *fleet) load(rate float64, d time.Duration) *fleetLoad {
	f.t.Helper()
	fl := &fleetLoad{by: map[string]int64{}}
	for _, p := range f.proxies {
		l, err := loadtest.Start(f.t.Context(), loadtest.Config{
			URL: "http://" + p.addr + "/", Header: http.Header{"X-Found-Cluster": {depID}},
			Rate: rate, Connections: 8, Duration: d, Timeout: 5 * time.Second,
			OnResponse: fl.tally,
		})
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { l.Stop() })
		fl.loads = append(fl.loads, l)
	}
	return fl
}

// tally counts a response by the instance that answered.
func (fl *fleetLoad) tally(r *loadtest.Result) {
	if h := r.Header("X-Found-Handling-Instance"); h != nil {
		fl.mu.Lock()
		fl.by[string(h)]++
		fl.mu.Unlock()
	}
}

func (fl *fleetLoad) wait(t *testing.T, what string) {
	t.Helper()
	for i, l := range fl.loads {
		checkNoFailures(t, fmt.Sprintf("%s, proxy p%d", what, i+1), l.Wait())
	}
}

// waitAnswered waits until the load has had a response.
func (fl *fleetLoad) waitAnswered(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, "the load gets responses", func() bool { return len(fl.answered()) > 0 })
}

func (fl *fleetLoad) answered() map[string]int64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	out := map[string]int64{}
	for k, v := range fl.by {
		out[k] = v
	}
	return out
}

// genStats sums requests and open connections over instances.
func genStats(t *testing.T, gen []*instanceProc) (requests, open int64) {
	t.Helper()
	for _, in := range gen {
		r, o := in.stats(t)
		requests, open = requests+r, open+o
	}
	return requests, open
}

// cutoverJSON is the part of yardctl's -o json output the tests read.
type cutoverJSON struct {
	Zxid int64 `json:"zxid"`
	Wait *struct {
		Proxies        int     `json:"proxies"`
		Current        int     `json:"current"`
		ElapsedSeconds float64 `json:"elapsed_seconds"`
	} `json:"wait"`
}

// 20 cutovers back and forth under load with 3 proxies: no request fails;
// once every proxy has applied a cutover, the old generation gets no new
// request and its idle connections are closed; a slow request on the old
// generation completes; a long stream on it gets its grace period.
func TestCutoversUnderLoad(t *testing.T) {
	f := startFleet(t, 3)
	const cutovers = 20
	fl := f.load(100, 3*time.Minute) // stopped after the cutovers
	fl.waitAnswered(t)

	gens := map[string][]*instanceProc{"blue": f.blue, "green": f.green}
	from := "blue"
	var waits []float64
	for i := 0; i < cutovers; i++ {
		to := map[string]string{"blue": "green", "green": "blue"}[from]
		old := gens[from]

		// Before cutover 1, a slow request and a long stream start on
		// the old generation (all traffic is there).
		var slow chan string
		var stream chan streamEnd
		if i == 1 {
			slow = make(chan string, 1)
			go func() {
				status, body := httpGet("http://"+f.proxies[0].addr+"/slow?ms=700", "X-Found-Cluster", depID)
				slow <- fmt.Sprintf("%d %s", status, body)
			}()
			stream = make(chan streamEnd, 1)
			// Long enough that it cannot end by itself within the bounds
			// checked for its cut.
			go func() { stream <- streamFor(f.proxies[1].addr, 30*time.Second) }()
			waitLong(t, 2, old...)
		}

		var out cutoverJSON
		raw := f.yardctl("-o", "json", "cutover", depID, "--to", to, "--wait")
		applied := time.Now()
		if err := json.Unmarshal([]byte(raw), &out); err != nil || out.Wait == nil {
			t.Fatalf("cutover %d: %v\n%s", i, err, raw)
		}
		if out.Wait.Proxies != 3 || out.Wait.Current != 3 {
			t.Fatalf("cutover %d: %d of %d proxies current; want 3 of 3", i, out.Wait.Current, out.Wait.Proxies)
		}
		waits = append(waits, out.Wait.ElapsedSeconds)

		// Idle pooled connections to the old generation close at once;
		// busy ones when their request ends (the slow request, the
		// stream after its grace).
		if i != 1 {
			testutil.Eventually(t, 10*time.Second, fmt.Sprintf("cutover %d: no connection open to %s", i, from), func() bool {
				_, open := genStats(t, old)
				return open == 0
			})
		}
		// No new request reaches the old generation: its count stays put
		// while the load goes on (requests picked just before the apply
		// are sent within microseconds; a loaded machine can delay them,
		// and 1s covers that).
		time.Sleep(time.Second)
		before, _ := genStats(t, old)
		time.Sleep(300 * time.Millisecond)
		if after, _ := genStats(t, old); after != before {
			t.Errorf("cutover %d to %s: %s got %d new requests after every proxy applied the cutover", i, to, from, after-before)
		}

		if i == 1 {
			select {
			case got := <-slow:
				if got != "200 "+old[0].name && got != "200 "+old[1].name {
					t.Errorf("slow request on the old generation: %q; want 200 from %s", got, from)
				}
			case <-time.After(5 * time.Second):
				t.Error("slow request on the old generation did not complete")
			}
			got := <-stream
			// The grace starts when the stream's proxy applies the table
			// (its /status says when it got it); yardctl returns later, by
			// up to its poll interval and more on a loaded machine.
			loaded := tableLoadedAt(t, f.proxies[1].admin)
			cut := got.at.Sub(loaded)
			t.Logf("long stream on the old generation: %s, ended %v after its proxy loaded the cutover, %v after yardctl returned (retire grace %v)",
				got.how, cut, got.at.Sub(applied), retireGrace)
			// A loaded machine can delay the cut.
			if cut < retireGrace || cut > retireGrace+2*time.Second {
				t.Errorf("long stream ended %v after the cutover; want at the end of its %v grace", cut, retireGrace)
			}
			testutil.Eventually(t, 10*time.Second, "no connection open to the old generation after the grace", func() bool {
				_, open := genStats(t, old)
				return open == 0
			})
		}
		from = to
	}
	for _, l := range fl.loads {
		l.Stop()
	}
	fl.wait(t, fmt.Sprintf("%d cutovers", cutovers))
	t.Logf("answered by: %v; yardctl --wait saw every proxy applied after %v s", fl.answered(), waits)
}

type streamEnd struct {
	how string
	at  time.Time
}

// streamFor reads a /stream response through the proxy and says how and
// when it ended.
func streamFor(addr string, d time.Duration) streamEnd {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/stream?ms=%d", addr, d.Milliseconds()), nil)
	req.Header.Set("X-Found-Cluster", depID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return streamEnd{"error: " + err.Error(), time.Now()}
	}
	defer resp.Body.Close()
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines++
	}
	return streamEnd{fmt.Sprintf("status %d, %d lines, then %v", resp.StatusCode, lines, sc.Err()), time.Now()}
}

// closedLoad sends n requests over conns connections spread over the
// fleet's proxies and tallies who answered.
func (f *fleet) closedLoad(n int64, rate float64) (*fleetLoad, []*loadtest.Report) {
	f.t.Helper()
	fl := &fleetLoad{by: map[string]int64{}}
	var reports []*loadtest.Report
	per := n / int64(len(f.proxies))
	for _, p := range f.proxies {
		l, err := loadtest.Start(f.t.Context(), loadtest.Config{
			URL: "http://" + p.addr + "/", Header: http.Header{"X-Found-Cluster": {depID}},
			Rate: rate / float64(len(f.proxies)), Connections: 8, Requests: per, Duration: time.Minute, Timeout: 5 * time.Second,
			OnResponse: fl.tally,
		})
		if err != nil {
			f.t.Fatal(err)
		}
		fl.loads = append(fl.loads, l)
	}
	for _, l := range fl.loads {
		reports = append(reports, l.Wait())
	}
	return fl, reports
}

// Canary weights, maintenance drain, rollback and the --force refusal,
// through yardctl against a fleet of 3 proxies.
func TestWeightsMaintenanceRollback(t *testing.T) {
	f := startFleet(t, 3)

	// Weights: blue=90,green=10 over 10 000 requests through the proxies.
	f.yardctl("weights", depID, "blue=90,green=10", "--wait")
	fl, reports := f.closedLoad(10000, 1500)
	for i, r := range reports {
		checkNoFailures(t, fmt.Sprintf("canary weights, proxy p%d", i+1), r)
	}
	by := fl.answered()
	total := by["b1"] + by["b2"] + by["g1"] + by["g2"]
	green := float64(by["g1"]+by["g2"]) / float64(total)
	t.Logf("weights blue=90,green=10: %v; green share %.2f%% of %d", by, 100*green, total)
	if green < 0.08 || green > 0.12 {
		t.Errorf("green got %.2f%% of %d requests; want 10%% ± 2%%", 100*green, total)
	}

	// Rollback: back to blue only.
	f.yardctl("rollback", depID, "--wait")
	bBefore, _ := genStats(t, f.blue)
	gBefore, _ := genStats(t, f.green)
	_, reports = f.closedLoad(300, 300)
	bAfter, _ := genStats(t, f.blue)
	gAfter, _ := genStats(t, f.green)
	if bAfter-bBefore != 300 || gAfter != gBefore {
		t.Errorf("after rollback: blue got %d, green %d of 300 requests; want all on blue", bAfter-bBefore, gAfter-gBefore)
	}

	// Maintenance: b1 finishes its running requests (within the retire
	// grace) but gets no new one; its connections close.
	b1 := f.blue[0]
	slow := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() {
			status, body := httpGet("http://"+f.proxies[i].addr+"/slow?ms=800", "X-Found-Cluster", depID)
			slow <- fmt.Sprintf("%d %s", status, body)
		}()
	}
	waitLong(t, 3, b1)
	f.yardctl("maintenance", depID, "b1", "on", "--wait")
	before, _ := b1.stats(t)
	load := f.load(150, 3*time.Second)
	for i := 0; i < 3; i++ {
		// Proxies in zone-a send to b1, the local blue instance.
		if got := <-slow; got != "200 b1" {
			t.Errorf("slow request running on b1 when it went into maintenance: %q; want it to finish there (200 b1)", got)
		}
	}
	load.wait(t, "b1 in maintenance")
	after, _ := b1.stats(t)
	if after != before {
		t.Errorf("b1 in maintenance got %d new requests", after-before)
	}
	testutil.Eventually(t, 10*time.Second, "b1's connections are closed", func() bool {
		_, open := b1.stats(t)
		return open == 0
	})
	if by := load.answered(); by["b1"] != 0 || by["b2"] == 0 {
		t.Errorf("answered by %v with b1 in maintenance; want b2 only", by)
	}
	f.yardctl("maintenance", depID, "b1", "off", "--wait")

	// --force: a generation with no instance able to serve is refused.
	f.yardctl("maintenance", depID, "g1", "on")
	f.yardctl("maintenance", depID, "g2", "on")
	out, err := f.yardctlErr("cutover", depID, "--to", "green")
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	want := `yardctl: cutover: generation "green" of ` + depID + ` has no instance able to serve (g1 in maintenance, g2 in maintenance); --force to cut over anyway`
	if code != 2 || strings.TrimSpace(out) != want {
		t.Errorf("cutover to a generation all in maintenance: exit %d, %q; want exit 2, %q", code, out, want)
	}
	if got := f.yardctl("cutover", depID, "--to", "green", "--force"); !strings.Contains(got, "serving blue=0,green=100") {
		t.Errorf("cutover --force: %q", got)
	}
	f.yardctl("rollback", depID, "--wait")
	if got := answeredBy(f.proxies[0]); got != "b1" && got != "b2" {
		t.Errorf("after rolling back the forced cutover: answered by %q; want blue", got)
	}
}

// A cutover to a green generation that answers 500 is rolled back by
// yardctl --auto-rollback from the proxies' reports.
func TestAutoRollbackOnFailingGeneration(t *testing.T) {
	f := startFleet(t, 3, backendStatusEnv+"=500")
	load := f.load(100, 20*time.Second)
	load.waitAnswered(t)

	start := time.Now()
	out, err := f.yardctlErr("cutover", depID, "--to", "green", "--auto-rollback", "1m:10%")
	took := time.Since(start)
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	t.Logf("yardctl cutover --auto-rollback 1m:10%% (exit %d after %v):\n%s", code, took, out)
	if code != 1 || !strings.Contains(out, "yardctl: cutover "+depID+": rolled back to blue=100,green=0: generation green: ") {
		t.Fatalf("cutover to a failing generation: exit %d; want 1 and a rollback", code)
	}
	if took > 10*time.Second {
		t.Errorf("rollback took %v; want within a few report intervals", took)
	}
	// Blue serves again on every proxy (yardctl waited for them).
	for _, l := range load.loads {
		l.Stop()
	}
	for i, p := range f.proxies {
		for j := 0; j < 20; j++ {
			if status, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", depID); status != 200 || body[0] != 'b' {
				t.Fatalf("proxy p%d after the rollback: %d from %q; want 200 from blue", i+1, status, body)
			}
		}
	}
	var failed int64
	for _, l := range load.loads {
		r := l.Wait()
		failed += r.Sent - r.Status[200]
	}
	t.Logf("requests that got green's 500 before the rollback: %d", failed)
}

// tableLoadedAt is when the proxy with this admin address loaded the table
// it serves.
func tableLoadedAt(t *testing.T, admin string) time.Time {
	t.Helper()
	_, body := httpGet("http://" + admin + "/status")
	var st struct {
		Table *struct {
			LoadedAt time.Time `json:"loaded_at"`
		} `json:"table"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Table == nil {
		t.Fatalf("proxy /status: %v: %s", err, body)
	}
	return st.Table.LoadedAt
}
