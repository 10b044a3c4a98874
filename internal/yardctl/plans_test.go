package yardctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/internal/testing/zktest"
)

const planID1 = "7f3a9c2e51d04b8e"

const planFile = `deployment: 7f3a9c2e51d04b8e
kind: es
display_name: Production search
aliases: [prod-search]
zones: 3
per_zone: 2
memory: 4GiB
spec:
  version: 8.13.0
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// plan apply writes a plan once per change and says so; plans and plan
// show read it with the status the constructor writes; plan delete
// refuses a running change unless forced.
func TestPlanApplyShowDelete(t *testing.T) {
	e, flags := zkFlags(t)
	f := writeFile(t, "plan.yaml", planFile)
	if out := yardOK(t, with(flags, "plan", "apply", "-f", f)...); out != "plan "+planID1+": revision 1 (new)\n" {
		t.Errorf("first apply: %q", out)
	}
	if out := yardOK(t, with(flags, "plan", "apply", "-f", f)...); out != "plan "+planID1+": unchanged at revision 1\n" {
		t.Errorf("second apply: %q", out)
	}
	f2 := writeFile(t, "plan.yaml", strings.Replace(planFile, "per_zone: 2", "per_zone: 1", 1)+"strategy: rolling\n")
	if out := yardOK(t, with(flags, "plan", "apply", "-f", f2)...); out != "plan "+planID1+": revision 2 (was 1)\n" {
		t.Errorf("changed apply: %q", out)
	}
	var applied planApplyOut
	if err := json.Unmarshal([]byte(yardOK(t, with(flags, "-o", "json", "plan", "apply", "-f", f2)...)), &applied); err != nil {
		t.Fatal(err)
	}
	if applied != (planApplyOut{Deployment: planID1, Revision: 2, Previous: 2}) {
		t.Errorf("apply -o json: %+v", applied)
	}
	other := writeFile(t, "other.yaml", "deployment: 0123456789abcdef\nkind: kb\nzones: 1\nper_zone: 1\nmemory: 1GiB\n")
	yardOK(t, with(flags, "plan", "apply", "-f", other)...)

	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	s := plan.New(conn, "/yard")
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	st := &plan.Status{State: plan.StateRunning, Step: "start", Revision: 2, Generation: "r2", StartedAt: at, UpdatedAt: at.Add(5 * time.Second),
		Instances: map[string]plan.InstanceProgress{"i-1": {Allocator: "host-1", Zone: "zone-a", State: "starting"}},
		History:   []plan.HistoryEntry{{Revision: 2, State: plan.StatePending, At: at}}}
	if _, err := s.WriteStatus(planID1, st, plan.NoStatus); err != nil {
		t.Fatal(err)
	}

	out := spaces.ReplaceAllString(yardOK(t, with(flags, "plans")...), " ")
	for _, want := range []string{
		"DEPLOYMENT KIND ZONES×PER_ZONE MEMORY STRATEGY REVISION STATE STEP\n",
		"0123456789abcdef kb 1×1 1 GiB grow_and_shrink 1 - -\n",
		planID1 + " es 3×1 4 GiB rolling 2 running start\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plans lacks %q:\n%s", want, out)
		}
	}

	out = yardOK(t, with(flags, "plan", "show", planID1)...)
	for _, want := range []string{
		"plan " + planID1 + ", revision 2\n",
		"  display name  Production search\n",
		"  aliases       prod-search\n",
		"  allow         any\n",
		"  instances     3 zones × 1 per zone = 3, 4 GiB each\n",
		"  strategy      rolling\n",
		`  spec          {"version":"8.13.0"}` + "\n",
		"status: running: start\n",
		"  generation  r2\n",
		"  started     2025-05-01T10:00:00Z\n",
		"  updated     2025-05-01T10:00:05Z\n",
		"  i-1       host-1     zone-a  starting\n",
		"history:\n  AT                    REVISION  STATE    STEP  REASON\n  2025-05-01T10:00:00Z  2         pending  -     -\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan show lacks %q:\n%s", want, out)
		}
	}
	var rec planOut
	if err := json.Unmarshal([]byte(yardOK(t, with(flags, "-o", "json", "plan", "show", planID1)...)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Revision != 2 || rec.Plan == nil || rec.Plan.PerZone != 1 || rec.Plan.Deployment != planID1 ||
		rec.Status == nil || rec.Status.Instances["i-1"].Allocator != "host-1" {
		t.Errorf("plan show -o json: %+v", rec)
	}
	var list []planOut
	if err := json.Unmarshal([]byte(yardOK(t, with(flags, "-o", "json", "plans")...)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Deployment != "0123456789abcdef" || list[0].Status != nil || list[1].Status.Step != "start" {
		t.Errorf("plans -o json: %+v", list)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "delete", planID1}, "yardctl: plan delete: " + planID1 + ": revision 2 is running (step start); --force to delete it anyway"},
		{[]string{"plan", "show", "00000000ffffffff"}, "yardctl: plan show: no plan for deployment 00000000ffffffff"},
		{[]string{"plan", "delete", "00000000ffffffff"}, "yardctl: plan delete: no plan for deployment 00000000ffffffff"},
	} {
		out, errOut, code := yard(t, with(flags, c.args...)...)
		if code != 2 || errOut != c.want+"\n" || out != "" {
			t.Errorf("yardctl %q: exit %d, stderr %q, stdout %q; want 2, %q", c.args, code, errOut, out, c.want)
		}
	}
	if out := yardOK(t, with(flags, "plan", "delete", planID1, "--force")...); out != "plan "+planID1+": deleted at revision 2\n" {
		t.Errorf("delete --force: %q", out)
	}
	if ok, _, _ := conn.Exists(s.Path(planID1)); ok {
		t.Error("the plan is still there after delete")
	}
	if out := yardOK(t, with(flags, "-o", "json", "plan", "delete", "0123456789abcdef")...); !strings.Contains(out, `"deleted": true`) {
		t.Errorf("delete -o json: %s", out)
	}
	if out := yardOK(t, with(flags, "plans")...); out != "no plans\n" {
		t.Errorf("plans with none: %q", out)
	}
}

// An invalid plan file is refused with one line naming the file, line and
// field, before ZooKeeper is dialed (the address does not answer).
func TestPlanApplyRefusesInvalidFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ file, want string }{
		{strings.Replace(planFile, "zones: 3", "zones: 12", 1), ":5: deployment " + planID1 + ": zones 12 is out of range 1-10"},
		{strings.Replace(planFile, "memory: 4GiB", "memory: 1MiB", 1), ":7: deployment " + planID1 + ": memory 1MiB is below the minimum, 16MiB"},
		{strings.Replace(planFile, "kind: es", "kind: Elastic", 1), ":2: deployment " + planID1 + `: kind "Elastic" is not a lowercase DNS label`},
		{planFile + "replicas: 2\n", `:10: unknown key "replicas" (known: deployment, kind, display_name, aliases, allow, zones, per_zone, memory, spec, strategy)`},
		{planFile + "strategy: blue_green\n", ":10: deployment " + planID1 + `: strategy "blue_green" is not grow_and_shrink or rolling`},
		{planFile + "---\n" + planFile, ":10: more than one YAML document"},
	} {
		f := writeFile(t, "plan.yaml", c.file)
		out, errOut, code := yard(t, "--zk", "127.0.0.1:1", "plan", "apply", "-f", f)
		if want := "yardctl: " + f + c.want + "\n"; code != 2 || errOut != want || out != "" {
			t.Errorf("exit %d, stderr %q, stdout %q; want 2, %q", code, errOut, out, want)
		}
	}
}

func TestPlanUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "yardctl: plan: want apply, show or delete"},
		{[]string{"plan", "list"}, `yardctl: plan: "list" is not apply, show or delete`},
		{[]string{"plan", "apply"}, "yardctl: plan apply: -f PLAN.yaml is required"},
		{[]string{"plan", "apply", "-f", "p.yaml", "x"}, `yardctl: plan apply: unexpected argument "x"`},
		{[]string{"plan", "apply", "-f", "/nonexistent/plan.yaml"}, "yardctl: open /nonexistent/plan.yaml: no such file or directory"},
		{[]string{"plan", "apply", "-f", "p.yaml", "--force"}, "yardctl: plan apply: --force does not apply"},
		{[]string{"plan", "show"}, "yardctl: plan show: want DEPLOYMENT, got 0 arguments"},
		{[]string{"plan", "show", planID1, "-f", "p.yaml"}, "yardctl: plan show: -f does not apply"},
		{[]string{"plan", "show", "prod-search"}, `yardctl: plan show: "prod-search" is not a deployment ID (8 to 32 lowercase hex digits)`},
		{[]string{"plan", "delete", planID1, "--wait"}, "yardctl: plan delete: --wait does not apply"},
		{[]string{"plan", "delete", planID1, "x"}, "yardctl: plan delete: want DEPLOYMENT, got 2 arguments"},
		{[]string{"plans", "x"}, `yardctl: plans: unexpected argument "x"`},
	} {
		out, errOut, code := yard(t, with([]string{"--zk", "127.0.0.1:1"}, c.args...)...)
		if code != 2 || errOut != c.want+"\n" || out != "" {
			t.Errorf("yardctl %q: exit %d, stderr %q, stdout %q; want 2, %q", c.args, code, errOut, out, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// started runs yardctl in the background; the result comes on the
// channel.
func started(args ...string) (stdout, stderr *syncBuffer, code <-chan int) {
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	c := make(chan int, 1)
	go func() { c <- run(context.Background(), args, stdout, stderr) }()
	return stdout, stderr, c
}

// waitFor waits until buf has n lines.
func waitFor(t *testing.T, buf *syncBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(buf.String(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("still %d lines, want %d:\n%s", strings.Count(buf.String(), "\n"), n, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var elapsedRE = regexp.MustCompile(`, \d+\.\ds\n`)

// plan apply --wait follows the status the constructor writes (here: the
// test) until the revision is done, one line per step; a failed revision
// is exit 1 with the step and reason; with no constructor it gives up
// after --timeout.
func TestPlanWait(t *testing.T) {
	e, flags := zkFlags(t)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	s := plan.New(conn, "/yard")
	f := writeFile(t, "plan.yaml", planFile)

	stdout, stderr, code := started(with(flags, "plan", "apply", "-f", f, "--wait")...)
	waitFor(t, stdout, 1)
	waitFor(t, stderr, 1)
	v := plan.NoStatus
	lines := 1
	for _, st := range []plan.Status{
		{State: plan.StatePending, Revision: 1},
		{State: plan.StateRunning, Step: "place", Revision: 1},
		{State: plan.StateRunning, Step: "start", Revision: 1},
		{State: plan.StateDone, Step: "release", Revision: 1, Generation: "r1"},
	} {
		var err error
		if v, err = s.WriteStatus(planID1, &st, v); err != nil {
			t.Fatal(err)
		}
		lines++
		waitFor(t, stderr, lines)
	}
	if c := <-code; c != 0 {
		t.Fatalf("apply --wait: exit %d, stderr %q", c, stderr.String())
	}
	wantErr := "plan 7f3a9c2e51d04b8e: revision 1: waiting for the constructor, 0.0s\n" +
		"plan 7f3a9c2e51d04b8e: revision 1: pending, 0.0s\n" +
		"plan 7f3a9c2e51d04b8e: revision 1: running: place, 0.0s\n" +
		"plan 7f3a9c2e51d04b8e: revision 1: running: start, 0.0s\n" +
		"plan 7f3a9c2e51d04b8e: revision 1: done: release, 0.0s\n"
	if got := elapsedRE.ReplaceAllString(stderr.String(), ", 0.0s\n"); got != wantErr {
		t.Errorf("progress:\n%s\nwant\n%s", got, wantErr)
	}
	wantOut := "plan 7f3a9c2e51d04b8e: revision 1 (new)\nplan 7f3a9c2e51d04b8e: revision 1 done, generation r1, 0.0s\n"
	if got := elapsedRE.ReplaceAllString(stdout.String(), ", 0.0s\n"); got != wantOut {
		t.Errorf("stdout:\n%s\nwant\n%s", got, wantOut)
	}

	// plan show --wait of a revision that fails: exit 1, the step and
	// the reason; -o json still says the whole record.
	f2 := writeFile(t, "plan.yaml", strings.Replace(planFile, "zones: 3", "zones: 2", 1))
	yardOK(t, with(flags, "plan", "apply", "-f", f2)...)
	stdout, stderr, code = started(with(flags, "-o", "json", "plan", "show", planID1, "--wait")...)
	waitFor(t, stderr, 1)
	// The status still says revision 1 is done: revision 2 waits.
	if !strings.HasPrefix(stderr.String(), "plan 7f3a9c2e51d04b8e: revision 2: waiting for the constructor, ") {
		t.Errorf("first line: %q; want revision 2 waiting", stderr.String())
	}
	if _, err := s.WriteStatus(planID1, &plan.Status{State: plan.StateFailed, Step: "start", Revision: 2, Reason: "i-3: crash loop"}, v); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != 1 {
		t.Errorf("show --wait of a failed revision: exit %d; want 1", c)
	}
	lastLine := stderr.String()[strings.LastIndex(strings.TrimSuffix(stderr.String(), "\n"), "\n")+1:]
	if want := "yardctl: plan 7f3a9c2e51d04b8e: revision 2 failed at step start: i-3: crash loop\n"; lastLine != want {
		t.Errorf("stderr ends %q; want %q", lastLine, want)
	}
	var rec planOut
	if err := json.Unmarshal([]byte(stdout.String()), &rec); err != nil || rec.Status == nil || rec.Status.State != plan.StateFailed {
		t.Errorf("show -o json --wait: %+v, %v\n%s", rec, err, stdout.String())
	}

	// No constructor: gives up after --timeout.
	f3 := writeFile(t, "plan.yaml", strings.Replace(planFile, "zones: 3", "zones: 1", 1))
	start := time.Now()
	out, errOut, c := yard(t, with(flags, "plan", "apply", "-f", f3, "--wait", "--timeout", "1s")...)
	if c != 1 || out != "plan 7f3a9c2e51d04b8e: revision 3 (was 2)\n" ||
		!strings.HasSuffix(errOut, "yardctl: plan 7f3a9c2e51d04b8e: revision 3 is not done after 1s: waiting for the constructor\n") {
		t.Errorf("apply --wait with no constructor: exit %d, stdout %q, stderr %q", c, out, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("--timeout 1s took %v", d)
	}
}
