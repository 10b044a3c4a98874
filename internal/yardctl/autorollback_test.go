package yardctl

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/controlplane/cutover"
)

func TestParseRollbackSpec(t *testing.T) {
	for _, c := range []struct {
		arg    string
		window time.Duration
		rate   float64
		err    string
	}{
		{"5m:5%", 5 * time.Minute, 0.05, ""},
		{"30s:0.1", 30 * time.Second, 0.1, ""},
		{"30s", 0, 0, `cutover: --auto-rollback: "30s" is not WINDOW:RATE (for example 5m:5%)`},
		{"soon:5%", 0, 0, `cutover: --auto-rollback: window "soon" is not a positive duration`},
		{"-1s:5%", 0, 0, `cutover: --auto-rollback: window "-1s" is not a positive duration`},
		{"1m:0", 0, 0, `cutover: --auto-rollback: rate "0" is not between 0 and 1 (or 0% and 100%)`},
		{"1m:100%", 0, 0, `cutover: --auto-rollback: rate "100%" is not between 0 and 1 (or 0% and 100%)`},
		{"1m:x%", 0, 0, `cutover: --auto-rollback: rate "x%" is not between 0 and 1 (or 0% and 100%)`},
	} {
		s, err := parseRollbackSpec(c.arg)
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%q: error %v; want %q", c.arg, err, c.err)
		case c.err == "" && (err != nil || s.Window != c.window || s.Rate != c.rate || s.MinRequests != cutover.DefaultMinRequests):
			t.Errorf("%q: %+v, %v; want window %v rate %v", c.arg, s, err, c.window, c.rate)
		}
	}
}

// genCount is a proxy's attempts and failures, as the fake route server
// reports them.
type genCount struct{ requests, errors uint64 }

// reportingRouteServer is a fake route server whose proxies are always
// current and whose reports for esID's green generation come from counts.
type reportingRouteServer struct {
	mu     sync.Mutex
	counts map[string]genCount // by proxy
	behind string              // a proxy that never applies anything
	onPoll func(n int)
	polls  int
}

func (f *reportingRouteServer) set(proxy string, c genCount) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[proxy] = c
}

func (f *reportingRouteServer) start(t *testing.T, conn *zk.Conn, name string) {
	t.Helper()
	const far = int64(1) << 40
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.polls++
		if f.onPoll != nil {
			f.onPoll(f.polls)
		}
		var ps, reps []string
		for id, c := range f.counts {
			v := far
			if id == f.behind {
				v = 1
			}
			ps = append(ps, fmt.Sprintf(`{"id":%q,"version":%d}`, id, v))
			reps = append(reps, fmt.Sprintf(`{"proxy":%q,"reported_at":%q,"generations":[`+
				`{"deployment":%q,"generation":"blue","requests":999,"errors":999},`+
				`{"deployment":%q,"generation":"green","requests":%d,"errors":%d}]}`,
				id, time.Now().Format(time.RFC3339Nano), esID, esID, c.requests, c.errors))
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"name":%q,"version":1,"proxies":[%s],"reports":[%s]}`, name, strings.Join(ps, ","), strings.Join(reps, ","))
	}))
	t.Cleanup(rs.Close)
	data := fmt.Sprintf(`{"url":%q,"started_at":"2030-01-01T00:00:00Z"}`, rs.URL)
	if _, err := conn.Create("/yard/routeservers/"+name, []byte(data), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
}

func TestAutoRollback(t *testing.T) {
	t.Parallel()
	flags, s, conn := servingTest(t)
	canary := map[string]int{"blue": 90, "green": 10, "red": 0}
	green := map[string]int{"blue": 0, "green": 100, "red": 0}
	// Before the cutover, green already failed a lot (the canary): that
	// is the baseline, not counted against this cutover.
	f := &reportingRouteServer{counts: map[string]genCount{"p1": {200, 150}, "p2": {0, 0}}}
	f.start(t, conn, "rs-a")

	// Healthy: 1 failure in 40 attempts, under 5%: held for the window.
	f.onPoll = func(n int) {
		if n > 2 {
			f.counts["p1"] = genCount{220, 151}
			f.counts["p2"] = genCount{20, 0}
		}
	}
	out, errOut, code := yard(t, with(flags, "cutover", esID, "--to", "green", "--auto-rollback", "1s:5%")...)
	if code != 0 || !strings.Contains(out, "green held for 1s: 1 of 40 attempts failed (2.5%) at 2 proxies") {
		t.Fatalf("healthy cutover: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	wantServing(t, s, "a healthy watched cutover", green, canary)

	// Back to the canary, then a cutover whose green fails: rolled back,
	// exit 1, the serving map restored.
	yardOK(t, with(flags, "weights", esID, "blue=90,green=10")...)
	f.mu.Lock()
	f.polls, f.onPoll = 0, func(n int) {
		if n > 2 {
			f.counts["p1"] = genCount{240, 161} // +20 attempts, +10 failures
			f.counts["p2"] = genCount{30, 0}    // +10
		}
	}
	f.mu.Unlock()
	start := time.Now()
	out, errOut, code = yard(t, with(flags, "cutover", esID, "--to", "green", "--auto-rollback", "1m:5%")...)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if code != 1 || out != "" || !strings.HasPrefix(last, "yardctl: cutover "+esID+": rolled back to blue=90,green=10,red=0: "+
		"generation green: 10 of 30 attempts failed (33.3%) at 2 proxies (over 5.0%); 2 of 2 proxies at version 0x") {
		t.Fatalf("failing cutover: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("rollback took %v; the window is 1m but the failures were there at once", took)
	}
	wantServing(t, s, "an auto-rollback", canary, green)

	// Someone else changes the serving map during the watch: the watch
	// must not overwrite it.
	f.mu.Lock()
	f.counts = map[string]genCount{"p1": {0, 0}}
	f.polls, f.onPoll = 0, func(n int) {
		if n == 4 {
			if _, err := s.SetServing(t.Context(), esID, map[string]int{"blue": 100, "green": 0, "red": 0}); err != nil {
				t.Error(err)
			}
		}
		if n > 4 {
			f.counts["p1"] = genCount{100, 100}
		}
	}
	f.mu.Unlock()
	_, errOut, code = yard(t, with(flags, "cutover", esID, "--to", "green", "--auto-rollback", "1m:5%")...)
	if code != 1 || !strings.Contains(errOut, "not rolled back: the serving map was changed meanwhile") {
		t.Fatalf("conflicting change: exit %d, stderr %q", code, errOut)
	}
	if dd := stored(t, s, esID); !maps.Equal(dd.Serving, map[string]int{"blue": 100, "green": 0, "red": 0}) {
		t.Errorf("the other writer's serving map was overwritten: %v", dd.Serving)
	}

	// A proxy that never applies the cutover does not disarm the watch:
	// the others' failures still roll it back.
	f.mu.Lock()
	f.counts, f.behind = map[string]genCount{"p1": {0, 0}, "p2": {0, 0}}, "p2"
	f.polls, f.onPoll = 0, func(n int) {
		if n > 2 {
			f.counts["p1"] = genCount{50, 50}
		}
	}
	f.mu.Unlock()
	// (--timeout also bounds reaching ZooKeeper and the route servers,
	// which a loaded machine can take a second for.)
	_, errOut, code = yard(t, with(flags, "cutover", esID, "--to", "green", "--auto-rollback", "1m:5%", "--timeout", "3s")...)
	if code != 1 || !strings.Contains(errOut, "1 of 2 proxies lag: p2 (at 0x1); watching anyway") ||
		!strings.Contains(errOut, "rolling back to blue=100,green=0,red=0") || !strings.Contains(errOut, ": rolled back (generation green: 50 of 50 attempts failed") {
		t.Fatalf("cutover with a lagging proxy: exit %d, stderr %q", code, errOut)
	}
	wantServing(t, s, "an auto-rollback with a proxy lagging", map[string]int{"blue": 100, "green": 0, "red": 0},
		map[string]int{"blue": 0, "green": 100, "red": 0})
}
