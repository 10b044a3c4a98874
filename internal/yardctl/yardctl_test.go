package yardctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// yard runs yardctl with args and returns its stdout, stderr and exit code.
func yard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// yardOK runs yardctl and fails the test unless it exits 0.
func yardOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := yard(t, args...)
	if code != 0 {
		t.Fatalf("yardctl %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	if errOut != "" {
		t.Errorf("yardctl %s: stderr %q", strings.Join(args, " "), errOut)
	}
	return out
}

func testdata(name string) string {
	return filepath.Join("..", "..", "routes", "routesfile", "testdata", name)
}

// zkFlags starts a server and returns the global flags that reach it at a
// root of the test's own.
func zkFlags(t *testing.T) (*zktest.Ensemble, []string) {
	t.Helper()
	e := zktest.Start(t)
	return e, []string{"--zk", strings.Join(e.Servers(), ","), "--root", "/yard"}
}

func with(flags []string, args ...string) []string {
	return append(append([]string(nil), flags...), args...)
}

// zxids are different on every run.
var (
	zxidRE = regexp.MustCompile(`0x[0-9a-f]+`)
	spaces = regexp.MustCompile(` +`)
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, `yardctl: missing command (run "yardctl help")`},
		{[]string{"routes"}, "yardctl: --zk is required"},
		{[]string{"--zk", "x:1", "frobnicate"}, `yardctl: unknown command "frobnicate" (run "yardctl help")`},
		{[]string{"--zk", "x:1", "-o", "yaml", "routes"}, `yardctl: -o: "yaml" is not table or json`},
		{[]string{"--zk", "x:1", "--root", "rel", "routes"}, `yardctl: --root: zkstore: bad root path: root "rel" is not an absolute path`},
		{[]string{"--zk", "x:1", "--bogus", "routes"}, "yardctl: unknown flag --bogus"},
		{[]string{"--zk", "x:1", "apply"}, "yardctl: apply: -f ROUTES.yaml is required"},
		{[]string{"--zk", "x:1", "apply", "-f", "a.yaml", "extra"}, `yardctl: apply: unexpected argument "extra"`},
		{[]string{"--zk", "x:1", "zone", "zone-a"}, "yardctl: zone: want ZONE up|down, got 1 arguments"},
		{[]string{"--zk", "x:1", "zone", "zone-a", "sideways"}, `yardctl: zone: state "sideways" is not up or down`},
		{[]string{"--zk", "x:1", "routes", "a", "b"}, `yardctl: routes: unexpected argument "b"`},
		{[]string{"--zk", "x:1", "status", "now"}, `yardctl: status: unexpected argument "now"`},
		{[]string{"--zk", "x:1", "apply", "-f", "/nonexistent/routes.yaml"}, "yardctl: open /nonexistent/routes.yaml: no such file or directory"},
	} {
		out, errOut, code := yard(t, c.args...)
		if code != 2 || errOut != c.want+"\n" || out != "" {
			t.Errorf("yardctl %q: got exit %d, stderr %q, stdout %q; want exit 2, %q", c.args, code, errOut, out, c.want)
		}
	}
	out, _, code := yard(t, "help")
	if code != 0 || !strings.Contains(out, "apply -f ROUTES.yaml") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	out, _, code = yard(t, "--zk", "x:1", "apply", "-h")
	if code != 0 || !strings.Contains(out, "usage: yardctl [global flags] apply") || !strings.Contains(out, "-prune") {
		t.Errorf("apply -h: exit %d\n%s", code, out)
	}
}

// An invalid routes file is refused with its one-line error before
// ZooKeeper is even dialed (the address here does not answer).
func TestApplyRefusesInvalidFiles(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(testdata("bad/*.yaml"))
	if len(files) == 0 {
		t.Fatal("no bad routes files")
	}
	for _, f := range files {
		want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
		if err != nil {
			t.Fatal(err)
		}
		// The .err files name the file by its base name.
		wantLine := "yardctl: " + filepath.Dir(f) + "/" + string(want)
		out, errOut, code := yard(t, "--zk", "127.0.0.1:1", "apply", "-f", f)
		if code != 2 || errOut != wantLine || out != "" {
			t.Errorf("%s: got exit %d, stderr %q; want exit 2, %q", filepath.Base(f), code, errOut, wantLine)
		}
	}
}

func TestUnreachableZooKeeper(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, args := range [][]string{
		{"routes"}, {"status"}, {"zone", "zone-a", "down"}, {"apply", "-f", testdata("good/canary.yaml")},
	} {
		start := time.Now()
		out, errOut, code := yard(t, with([]string{"--zk", addr, "--timeout", "500ms"}, args...)...)
		want := fmt.Sprintf("yardctl: zkstore: ZooKeeper unavailable: no session with %s within 500ms\n", addr)
		if code != 1 || errOut != want || out != "" {
			t.Errorf("%v: got exit %d, stderr %q; want exit 1, %q", args, code, errOut, want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%v: took %v with --timeout 500ms", args, d)
		}
	}
}

func TestApplyRoutesZone(t *testing.T) {
	t.Parallel()
	_, flags := zkFlags(t)
	canary := testdata("good/canary.yaml")

	out := yardOK(t, with(flags, "apply", "-f", canary)...)
	wantApply := `created config example.test
created zone zone-c (down)
created deployment 0a1b2c3d (apm, 1 instances)
created deployment 7f3a9c2e51d04b8e9a6c3d2f1e0b4a57 (es, 6 instances)
created deployment c41d8e2b7a9f4063b5e1d7c2a8f93b16 (kb, 2 instances)
deployments: 3 created, 0 updated, 0 unchanged, 0 deleted; zxid 0x
`
	if got := zxidRE.ReplaceAllString(out, "0x"); got != wantApply {
		t.Errorf("apply:\ngot\n%s\nwant\n%s", got, wantApply)
	}
	if out := yardOK(t, with(flags, "apply", "-f", canary)...); out != "no changes (3 deployments unchanged)\n" {
		t.Errorf("second apply: %q", out)
	}

	// Flags after the command work too.
	out = yardOK(t, "routes", "--zk", flags[1], "--root", "/yard")
	got := zxidRE.ReplaceAllString(out, "0x")
	for _, line := range []string{
		"root /yard  domain example.test",
		"zones: zone-c down",
		"version 0x  3 deployments",
		"DEPLOYMENT                        NAME  KIND  ALIASES         ALLOW                 SERVING                 INSTANCE  ZONE    GENERATION  MAINTENANCE  ADDR",
		"0a1b2c3d                          -     apm   -               any                   blue=1                  i-0201    zone-b  blue        no           127.0.0.1:19401",
		"7f3a9c2e51d04b8e9a6c3d2f1e0b4a57  -     es    prod-search     any                   blue=90,green=10,red=0  i-0001    zone-a  blue        no           127.0.0.1:19201",
		"                                                                                                            i-0002    zone-b  blue        no           127.0.0.1:19202",
		"c41d8e2b7a9f4063b5e1d7c2a8f93b16  -     kb    prod-dash,dash  10.0.0.0/8,192.0.2.7  green=100               i-0101    zone-a  green       no           127.0.0.1:19301",
		"proxies: no route servers registered",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("routes: no line %q in\n%s", line, got)
		}
	}

	// One deployment, by alias; JSON.
	out = yardOK(t, with(flags, "-o", "json", "routes", "prod-dash.kb")...)
	var rj routesJSON
	if err := json.Unmarshal([]byte(out), &rj); err != nil {
		t.Fatalf("routes -o json: %v\n%s", err, out)
	}
	if len(rj.Deployments) != 1 || rj.Deployments[0].ID != "c41d8e2b7a9f4063b5e1d7c2a8f93b16" || len(rj.Deployments[0].Instances) != 2 ||
		!slices.Equal(rj.Deployments[0].Allow, []string{"10.0.0.0/8", "192.0.2.7"}) ||
		rj.Domain != "example.test" || rj.Zones["zone-c"] != "down" || rj.Version == 0 || rj.Root != "/yard" {
		t.Errorf("routes -o json: %+v", rj)
	}
	if _, errOut, code := yard(t, with(flags, "routes", "0123456789abcdef")...); code != 1 || errOut != "yardctl: routes: no deployment \"0123456789abcdef\" in the store\n" {
		t.Errorf("unknown deployment: exit %d, %q", code, errOut)
	}

	// zone.
	out = yardOK(t, with(flags, "zone", "zone-a", "down")...)
	if got := zxidRE.ReplaceAllString(out, "0x"); got != "zone zone-a down (zxid 0x)\n" {
		t.Errorf("zone: %q", out)
	}
	if out := yardOK(t, with(flags, "routes", "0a1b2c3d")...); !strings.Contains(out, "zones: zone-a down, zone-c down\n") || strings.Contains(out, "c41d8e2b") {
		t.Errorf("routes after zone down:\n%s", out)
	}
	if _, errOut, code := yard(t, with(flags, "zone", "Zone_A", "up")...); code != 2 || !strings.Contains(errOut, "is not a lowercase DNS label") {
		t.Errorf("bad zone name: exit %d, %q", code, errOut)
	}
	if _, errOut, code := yard(t, "--zk", flags[1], "--root", "/elsewhere", "zone", "zone-a", "up"); code != 1 || !strings.Contains(errOut, "/elsewhere/deployments does not exist") {
		t.Errorf("zone without a root: exit %d, %q", code, errOut)
	}
	if _, errOut, code := yard(t, "--zk", flags[1], "--root", "/elsewhere", "routes"); code != 1 || !strings.Contains(errOut, "yardctl: routes: zkstore: no routing table at root: /elsewhere does not exist") {
		t.Errorf("routes without a root: exit %d, %q", code, errOut)
	}

	// A changed file, pruned, with JSON output.
	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte(`domain: example.test
zones: {zone-c: up}
deployments:
  - id: 0a1b2c3d
    kind: apm
    serving: {blue: 1}
    instances:
      - {id: i-0201, addr: 127.0.0.1:19401, zone: zone-b, generation: blue, maintenance: true}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out = yardOK(t, with(flags, "-o", "json", "apply", "--prune", "-f", next)...)
	var aj applyJSON
	if err := json.Unmarshal([]byte(out), &aj); err != nil {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	var changes []string
	for _, c := range aj.Changes {
		changes = append(changes, c.Action+" "+c.Kind+" "+c.Name+" "+c.Detail)
	}
	wantChanges := "updated zone zone-c up|deleted zone zone-a |updated deployment 0a1b2c3d instances +0 ~1 -0|" +
		"deleted deployment 7f3a9c2e51d04b8e9a6c3d2f1e0b4a57 |deleted deployment c41d8e2b7a9f4063b5e1d7c2a8f93b16 "
	if strings.Join(changes, "|") != wantChanges || aj.Updated != 1 || aj.Deleted != 2 || aj.Zxid == 0 {
		t.Errorf("apply --prune -o json: %+v\nchanges %q\nwant    %q", aj, strings.Join(changes, "|"), wantChanges)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	e, flags := zkFlags(t)
	yardOK(t, with(flags, "apply", "-f", testdata("good/design-example.yaml"))...)
	if out := yardOK(t, with(flags, "status")...); !strings.Contains(out, "no route servers registered") {
		t.Errorf("status without route servers:\n%s", out)
	}

	// A route server: a Watcher keeps its registration, and a test
	// server answers /status in the route server's shape.
	var version int64
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"name":"rs-a","version":%d,"hash":"abc","stale":false,"deployments":1,"invalid":{},
			"proxies":[{"id":"proxy-1","zone":"zone-a","addr":"127.0.0.1:5","version":%d,"current":true,"lag_seconds":0,"last_seen":"2030-01-02T03:04:05Z"},
			           {"id":"proxy-2","zone":"zone-b","version":1,"lag_seconds":2.5,"last_seen":"2030-01-02T03:04:00Z"}]}`, version, version)
	}))
	defer rs.Close()
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	s, _ := zkstore.New(conn, "/yard")
	snap, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	version = snap.Version
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := &zkstore.Watcher{Servers: e.Servers(), Root: "/yard", SessionTimeout: 4 * time.Second,
		Register: &zkstore.Registration{Name: "rs-a", URL: rs.URL}}
	go func() {
		defer close(done)
		_ = w.Run(ctx, func(zkstore.State) {})
	}()
	defer func() { cancel(); <-done }()
	// A second one that is gone without its znode being (yet).
	if _, err := conn.Create("/yard/routeservers/rs-b", []byte(`{"url":"http://127.0.0.1:1","started_at":"2030-01-01T00:00:00Z"}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "rs-a registered", func() bool {
		ok, _, _ := conn.Exists("/yard/routeservers/rs-a")
		return ok
	})

	out := yardOK(t, with(flags, "status")...)
	// zxids differ in length from run to run, and so do columns after them.
	got := spaces.ReplaceAllString(zxidRE.ReplaceAllString(out, "0x"), " ")
	for _, line := range []string{
		"store /yard  version 0x  1 deployments  zones: zone-a up, zone-b down",
		"ROUTE SERVER  URL                     STATE        VERSION  DEPLOYMENTS  INVALID  PROXIES",
		"rs-b          http://127.0.0.1:1      unreachable  -        -            -        -",
		"route server rs-b (http://127.0.0.1:1) is unreachable: Get \"http://127.0.0.1:1/status\": dial tcp 127.0.0.1:1: connect: connection refused",
		"PROXY    ZONE    ROUTE SERVER  VERSION  CURRENT  LAG   LAST SEEN",
		"proxy-1  zone-a  rs-a          0x       yes      0.0s  2030-01-02T03:04:05Z",
		"proxy-2  zone-b  rs-a          0x       no       2.5s  2030-01-02T03:04:00Z",
	} {
		if line = spaces.ReplaceAllString(line, " "); !strings.Contains(got, line+"\n") {
			t.Errorf("status: no line %q in\n%s", line, got)
		}
	}
	if !regexp.MustCompile(`(?m)^rs-a http://127\.0\.0\.1:\d+ ok 0x 1 0 2$`).MatchString(got) {
		t.Errorf("status: no ok line for rs-a in\n%s", got)
	}

	// routes says which proxies serve what it shows.
	out = yardOK(t, with(flags, "routes")...)
	got = zxidRE.ReplaceAllString(out, "0x")
	for _, line := range []string{
		"proxies: 1 of 2 applied version 0x; behind: proxy-2 (at 0x)",
		"unreachable route servers: rs-b",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("routes: no line %q in\n%s", line, got)
		}
	}
	out = yardOK(t, with(flags, "-o", "json", "routes")...)
	var rj routesJSON
	if err := json.Unmarshal([]byte(out), &rj); err != nil {
		t.Fatalf("routes -o json: %v\n%s", err, out)
	}
	if px := rj.Proxies; px.RouteServers != 2 || px.Reported != 2 || px.Current != 1 || len(px.Behind) != 1 ||
		!strings.HasPrefix(px.Behind[0], "proxy-2 ") || !slices.Equal(px.Unreachable, []string{"rs-b"}) || px.Error != "" {
		t.Errorf("routes -o json proxies: %+v", px)
	}

	out = yardOK(t, with(flags, "status", "-o", "json")...)
	var sj statusJSON
	if err := json.Unmarshal([]byte(out), &sj); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(sj.RouteServers) != 2 || sj.RouteServers[0].Status == nil || len(sj.RouteServers[0].Status.Proxies) != 2 ||
		sj.RouteServers[1].Error == "" || sj.Store.Version != version || sj.Store.Deployments != 1 {
		t.Errorf("status -o json: %+v", sj)
	}

	// A change to another deployment moves the store's version past
	// proxy-1's; a view of the first deployment alone still counts it
	// current, since it applied every change that view shows.
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte(`domain: example.test
zones:
  zone-a: up
  zone-b: down
deployments:
  - id: 0b1c2d3e
    kind: kb
    serving: {blue: 100}
    instances:
      - {id: i-0101, addr: 127.0.0.1:19301, zone: zone-a, generation: blue}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	yardOK(t, with(flags, "apply", "-f", other)...)
	got = zxidRE.ReplaceAllString(yardOK(t, with(flags, "routes")...), "0x")
	if line := "proxies: 0 of 2 applied version 0x; behind: "; !strings.Contains(got, line) {
		t.Errorf("routes after another deployment's change: no %q in\n%s", line, got)
	}
	got = zxidRE.ReplaceAllString(yardOK(t, with(flags, "routes", "7f3a9c2e51d04b8e")...), "0x")
	if line := "proxies: 1 of 2 applied version 0x (the last change of 7f3a9c2e51d04b8e, its zones and domain); behind: proxy-2 (at 0x)\n"; !strings.Contains(got, line) {
		t.Errorf("routes of one deployment: no line %q in\n%s", line, got)
	}
	out = yardOK(t, with(flags, "-o", "json", "routes", "7f3a9c2e51d04b8e")...)
	if err := json.Unmarshal([]byte(out), &rj); err != nil {
		t.Fatalf("routes -o json DEPLOYMENT: %v\n%s", err, out)
	}
	if px := rj.Proxies; px.Current != 1 || px.Version != fmt.Sprintf("0x%x", version) {
		t.Errorf("routes -o json DEPLOYMENT proxies: %+v; want 1 current at 0x%x", px, version)
	}
}
