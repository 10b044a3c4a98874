package yardctl

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes/zkstore"
)

const esID = "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57" // prod-search.es in canary.yaml

// servingTest applies canary.yaml and returns the flags and a store to
// look at what the commands wrote.
func servingTest(t *testing.T) ([]string, *zkstore.Store, *zk.Conn) {
	t.Helper()
	e, flags := zkFlags(t)
	yardOK(t, with(flags, "apply", "-f", testdata("good/canary.yaml"))...)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	s, err := zkstore.New(conn, "/yard")
	if err != nil {
		t.Fatal(err)
	}
	return flags, s, conn
}

func stored(t *testing.T, s *zkstore.Store, id string) zkstore.DeploymentData {
	t.Helper()
	_, dd, err := s.ReadSpec(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return dd
}

func wantServing(t *testing.T, s *zkstore.Store, what string, serving, previous map[string]int) {
	t.Helper()
	dd := stored(t, s, esID)
	if !maps.Equal(dd.Serving, serving) || !maps.Equal(dd.PreviousServing, previous) {
		t.Errorf("after %s: serving %v, previous %v; want %v, %v", what, dd.Serving, dd.PreviousServing, serving, previous)
	}
}

// wantUsage runs yardctl and wants exit 2 with exactly line on stderr.
func wantUsage(t *testing.T, line string, args ...string) {
	t.Helper()
	out, errOut, code := yard(t, args...)
	if code != 2 || errOut != line+"\n" || out != "" {
		t.Errorf("yardctl %q: got exit %d, stderr %q, stdout %q; want exit 2, %q", args, code, errOut, out, line)
	}
}

func TestCutoverWeightsRollback(t *testing.T) {
	t.Parallel()
	flags, s, _ := servingTest(t)
	canary := map[string]int{"blue": 90, "green": 10, "red": 0}

	out := yardOK(t, with(flags, "cutover", "prod-search.es", "--to", "green")...)
	want := "cutover " + esID + ": serving blue=0,green=100,red=0 (was blue=90,green=10,red=0), zxid 0x\n"
	if got := zxidRE.ReplaceAllString(out, "0x"); got != want {
		t.Errorf("cutover: %q; want %q", got, want)
	}
	green := map[string]int{"blue": 0, "green": 100, "red": 0}
	wantServing(t, s, "cutover", green, canary)

	yardOK(t, with(flags, "rollback", esID)...)
	wantServing(t, s, "rollback", canary, green)

	out = yardOK(t, with(flags, "-o", "json", "weights", "prod-search.es", "blue=50, green=50")...)
	var cj changeOut
	if err := json.Unmarshal([]byte(out), &cj); err != nil {
		t.Fatalf("weights -o json: %v\n%s", err, out)
	}
	half := map[string]int{"blue": 50, "green": 50, "red": 0}
	if cj.Deployment != esID || !maps.Equal(cj.Serving, half) || !maps.Equal(cj.PreviousServing, canary) || cj.Zxid == 0 || cj.Wait != nil {
		t.Errorf("weights -o json: %+v", cj)
	}
	wantServing(t, s, "weights", half, canary)

	// Generations without instances, or none of whose instances can serve.
	wantUsage(t, `yardctl: weights: generation "purple" has no instances in `+esID+` (generations: blue, green, red)`,
		with(flags, "weights", esID, "blue=1,purple=1")...)
	wantUsage(t, `yardctl: cutover: generation "purple" has no instances in `+esID+` (generations: blue, green, red); --force to cut over anyway`,
		with(flags, "cutover", esID, "--to", "purple")...)
	out = yardOK(t, with(flags, "maintenance", "prod-search.es", "i-0006", "on")...)
	if got := zxidRE.ReplaceAllString(out, "0x"); got != "maintenance "+esID+" i-0006 on, zxid 0x\n" {
		t.Errorf("maintenance: %q", got)
	}
	d, _, err := s.ReadSpec(context.Background(), esID)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.Instances {
		if in.Maintenance != (in.ID == "i-0006") {
			t.Errorf("instance %s: maintenance %v", in.ID, in.Maintenance)
		}
	}
	wantUsage(t, `yardctl: cutover: generation "red" of `+esID+` has no instance able to serve (i-0006 in maintenance); --force to cut over anyway`,
		with(flags, "cutover", esID, "--to", "red")...)
	yardOK(t, with(flags, "maintenance", esID, "i-0006", "off")...)
	yardOK(t, with(flags, "zone", "zone-a", "down")...)
	wantUsage(t, `yardctl: cutover: generation "red" of `+esID+` has no instance able to serve (i-0006 in zone zone-a which is down); --force to cut over anyway`,
		with(flags, "cutover", esID, "--to", "red")...)
	wantServing(t, s, "refused cutovers", half, canary)
	yardOK(t, with(flags, "cutover", esID, "--to", "red", "--force")...)
	wantServing(t, s, "forced cutover", map[string]int{"blue": 0, "green": 0, "red": 100}, half)
	yardOK(t, with(flags, "cutover", esID, "--to", "purple", "--force")...)
	wantServing(t, s, "forced cutover", map[string]int{"blue": 0, "green": 0, "red": 0, "purple": 100}, map[string]int{"blue": 0, "green": 0, "red": 100})

	wantUsage(t, "yardctl: rollback: 0a1b2c3d has no previous serving map", with(flags, "rollback", "0a1b2c3d")...)
	wantUsage(t, `yardctl: maintenance: zkstore: no such instance: `+esID+` has no instance "i-9999"`,
		with(flags, "maintenance", esID, "i-9999", "on")...)
	wantUsage(t, `yardctl: cutover: no deployment "nope.es" in the store`, with(flags, "cutover", "nope.es", "--to", "blue")...)
}

// fakeRouteServer answers /status with the proxies versions returns.
func fakeRouteServer(t *testing.T, conn *zk.Conn, name string, versions func() map[string]int64) {
	t.Helper()
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ps []string
		for id, v := range versions() {
			ps = append(ps, fmt.Sprintf(`{"id":%q,"zone":"zone-a","version":%d,"lag_seconds":0}`, id, v))
		}
		fmt.Fprintf(w, `{"name":%q,"version":1,"stale":false,"deployments":3,"invalid":{},"proxies":[%s]}`, name, strings.Join(ps, ","))
	}))
	t.Cleanup(rs.Close)
	data := fmt.Sprintf(`{"url":%q,"started_at":"2030-01-01T00:00:00Z"}`, rs.URL)
	if _, err := conn.Create("/yard/routeservers/"+name, []byte(data), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	flags, _, conn := servingTest(t)
	const far = int64(1) << 40 // above any zxid of the test
	var calls atomic.Int64
	// rs-a: proxy-1 is current, proxy-2 catches up after a few polls.
	fakeRouteServer(t, conn, "rs-a", func() map[string]int64 {
		v2 := int64(1)
		if calls.Add(1) > 3 {
			v2 = far
		}
		return map[string]int64{"proxy-1": far, "proxy-2": v2}
	})
	// rs-b reports proxy-1 too (an older sighting): counted once.
	fakeRouteServer(t, conn, "rs-b", func() map[string]int64 { return map[string]int64{"proxy-1": 1} })

	out, errOut, code := yard(t, with(flags, "cutover", esID, "--to", "green", "--wait")...)
	if code != 0 {
		t.Fatalf("cutover --wait: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(zxidRE.ReplaceAllString(errOut, "0x"), "1 of 2 proxies at version 0x, ") {
		t.Errorf("cutover --wait: no progress on stderr: %q", errOut)
	}
	if got := zxidRE.ReplaceAllString(out, "0x"); !strings.Contains(got, "zxid 0x; 2 of 2 proxies at version 0x after ") || !strings.HasSuffix(got, "s\n") {
		t.Errorf("cutover --wait: %q", out)
	}

	// A proxy that stays behind: exit 1 after --timeout, naming it.
	// (--timeout also bounds reaching ZooKeeper, which a loaded machine can
	// take a second for.)
	calls.Store(-1 << 30)
	start := time.Now()
	out, errOut, code = yard(t, with(flags, "-o", "json", "maintenance", esID, "i-0001", "on", "--wait", "--timeout", "3s")...)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if code != 1 || out != "" || !strings.HasPrefix(last, "yardctl: maintenance: written (zxid 0x") ||
		!strings.HasSuffix(last, "but after 3s 1 of 2 proxies lag: proxy-2 (at 0x1)") {
		t.Errorf("maintenance --wait behind: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := time.Since(start); d < 3*time.Second || d > 10*time.Second {
		t.Errorf("maintenance --wait --timeout 3s took %v", d)
	}

	// JSON with a wait that completes.
	calls.Store(100)
	out = yardOK(t, with(flags, "-o", "json", "rollback", esID, "--wait")...)
	var cj changeOut
	if err := json.Unmarshal([]byte(out), &cj); err != nil {
		t.Fatalf("rollback -o json: %v\n%s", err, out)
	}
	if cj.Wait == nil || cj.Wait.Proxies != 2 || cj.Wait.Current != 2 || cj.Wait.Version != cj.Zxid {
		t.Errorf("rollback --wait -o json: %+v", cj)
	}
}

func TestServingUsageErrors(t *testing.T) {
	t.Parallel()
	z := []string{"--zk", "127.0.0.1:1"}
	for _, c := range []struct {
		want string
		args []string
	}{
		{"yardctl: cutover: want DEPLOYMENT --to GEN, got 0 arguments", []string{"cutover", "--to", "green"}},
		{"yardctl: cutover: --to GEN is required", []string{"cutover", esID}},
		{"yardctl: weights: want DEPLOYMENT GEN=W[,GEN=W...], got 1 arguments", []string{"weights", esID}},
		{`yardctl: weights: "blue" is not GEN=W`, []string{"weights", esID, "blue"}},
		{`yardctl: weights: blue: weight "-1" is not an integer >= 0`, []string{"weights", esID, "blue=-1"}},
		{`yardctl: weights: blue: weight "x" is not an integer >= 0`, []string{"weights", esID, "blue=x"}},
		{`yardctl: weights: generation "blue" is listed twice`, []string{"weights", esID, "blue=1,blue=2"}},
		{"yardctl: weights: weights sum to 0", []string{"weights", esID, "blue=0,green=0"}},
		{"yardctl: weights: blue: weight 1000001 is out of range 0-1000000", []string{"weights", esID, "blue=1000001"}},
		{"yardctl: rollback: want DEPLOYMENT, got 2 arguments", []string{"rollback", esID, "x"}},
		{"yardctl: maintenance: want DEPLOYMENT INSTANCE on|off, got 2 arguments", []string{"maintenance", esID, "i-0001"}},
		{`yardctl: maintenance: "maybe" is not on or off`, []string{"maintenance", esID, "i-0001", "maybe"}},
		{"yardctl: unknown flag --force", []string{"weights", esID, "blue=1", "--force"}},
		{"yardctl: unknown flag --wait", []string{"zone", "zone-a", "up", "--wait"}},
		{`yardctl: cutover: --auto-rollback: rate "2" is not between 0 and 1 (or 0% and 100%)`, []string{"cutover", esID, "--to", "green", "--auto-rollback", "1m:2"}},
	} {
		wantUsage(t, c.want, with(z, c.args...)...)
	}
}
