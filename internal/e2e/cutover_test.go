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
			"--zone", "zone-a", "--cache-dir", t.TempDir(), "--retire-grace", "1s"))
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
			OnResponse: func(r *loadtest.Result) {
				if h := r.Header("X-Found-Handling-Instance"); h != nil {
					fl.mu.Lock()
					fl.by[string(h)]++
					fl.mu.Unlock()
				}
			},
		})
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { l.Stop() })
		fl.loads = append(fl.loads, l)
	}
	return fl
}

func (fl *fleetLoad) wait(t *testing.T, what string) {
	t.Helper()
	for i, l := range fl.loads {
		checkNoFailures(t, fmt.Sprintf("%s, proxy p%d", what, i+1), l.Wait())
	}
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
	fl := f.load(100, 60*time.Second)
	time.Sleep(500 * time.Millisecond)

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
				status, body := httpGet("http://"+f.proxies[0].addr+"/slow?ms=1500", "X-Found-Cluster", depID)
				slow <- fmt.Sprintf("%d %s", status, body)
			}()
			stream = make(chan streamEnd, 1)
			go func() { stream <- streamFor(f.proxies[1].addr, 10*time.Second) }()
			time.Sleep(200 * time.Millisecond)
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
			waitUntil(t, 2*time.Second, fmt.Sprintf("cutover %d: no connection open to %s", i, from), func() bool {
				_, open := genStats(t, old)
				return open == 0
			})
		}
		// No new request reaches the old generation: its count stays put
		// while the load goes on (requests picked just before the apply
		// are sent within microseconds; 50 ms covers them).
		time.Sleep(50 * time.Millisecond)
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
			cut := got.at.Sub(applied)
			t.Logf("long stream on the old generation: %s, ended %v after yardctl saw the cutover applied (retire grace 1s)", got.how, cut)
			// yardctl returns a little after the proxies applied the
			// cutover, which started the grace.
			if cut < 500*time.Millisecond || cut > 1500*time.Millisecond {
				t.Errorf("long stream ended %v after the cutover; want at the end of its 1s grace", cut)
			}
			waitUntil(t, 2*time.Second, "no connection open to the old generation after the grace", func() bool {
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
