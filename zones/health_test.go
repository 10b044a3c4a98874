package zones

import (
	"testing"
	"time"
)

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		o       Outcome
		failure bool
	}{
		{OutcomeSuccess, false},
		{OutcomeConnectError, true},
		{OutcomeReset, true},
		{OutcomeTimeout, true},
		{OutcomeStatus5xx, true},
		{OutcomeCanceled, false},
	} {
		if got := tc.o.Failure(); got != tc.failure {
			t.Errorf("%v.Failure() = %v; want %v", tc.o, got, tc.failure)
		}
	}
	for code, want := range map[int]Outcome{200: OutcomeSuccess, 404: OutcomeSuccess, 499: OutcomeSuccess, 500: OutcomeStatus5xx, 503: OutcomeStatus5xx, 599: OutcomeStatus5xx, 600: OutcomeSuccess} {
		if got := OutcomeOfStatus(code); got != want {
			t.Errorf("OutcomeOfStatus(%d) = %v; want %v", code, got, want)
		}
	}
}

// Only an unbroken run of ConsecutiveFailures failures ejects.
func TestConsecutiveFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []Outcome
		ejected  bool
	}{
		{"five 5xx", repeat(OutcomeStatus5xx, 5), true},
		{"four 5xx", repeat(OutcomeStatus5xx, 4), false},
		{"mixed failures", []Outcome{OutcomeConnectError, OutcomeReset, OutcomeTimeout, OutcomeStatus5xx, OutcomeConnectError}, true},
		{"a success resets", append(append(repeat(OutcomeTimeout, 4), OutcomeSuccess), repeat(OutcomeTimeout, 4)...), false},
		{"canceled does not reset", append(append(repeat(OutcomeTimeout, 4), OutcomeCanceled), OutcomeTimeout), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := testBalancer(Config{})
			tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 4}))
			b.Prepare(tbl)
			in := d.Eligible[0]
			for _, o := range tc.outcomes {
				b.Begin(d, in)
				b.End(d, in, o)
			}
			if got := instStatus(t, allStatus(b), in.ID).Ejected; got != tc.ejected {
				t.Errorf("ejected = %v; want %v", got, tc.ejected)
			}
		})
	}
}

func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// Ejections last base × n, capped; n decays by one per base period back in
// service; the instance returns lazily when its time is up.
func TestEjectionCycle(t *testing.T) {
	const base, max = 30 * time.Second, 80 * time.Second
	b, clk := testBalancer(Config{BaseEjection: base, MaxEjection: max})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 4}))
	b.Prepare(tbl)
	x := byID(t, d, "zone-a-1")
	ejectedFor := func() time.Duration {
		t.Helper()
		s := instStatus(t, allStatus(b), x.ID)
		if !s.Ejected {
			return 0
		}
		return s.EjectedUntil.Sub(clk.Now())
	}
	steps := []struct {
		name    string
		advance time.Duration // before failing
		times   int           // TimesEjected after the ejection
		want    time.Duration
	}{
		{"first: base", 0, 1, base},
		{"second, right after return: 2 × base", 0, 2, 2 * base},
		{"third: capped", 0, 3, max},
		{"fourth: stays capped", 0, 3, max},
		{"after two periods back: n decayed 3 → 1, so 2 × base", 2 * base, 2, 2 * base},
		{"after long enough: n back to 0, so base", 10 * max, 1, base},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		fail(b, x, 5)
		if got := ejectedFor(); got != st.want {
			t.Fatalf("%s: ejected for %v; want %v", st.name, got, st.want)
		}
		if got := instStatus(t, allStatus(b), x.ID).TimesEjected; got != st.times {
			t.Errorf("%s: times ejected = %d; want %d", st.name, got, st.times)
		}
		// Ejected: never picked, and failures meanwhile change nothing.
		if byInst, _ := picks(t, b, d, 500); byInst[x.ID] != 0 {
			t.Fatalf("%s: ejected instance picked %d times", st.name, byInst[x.ID])
		}
		fail(b, x, 5)
		if got := ejectedFor(); got != st.want {
			t.Fatalf("%s: failures while ejected changed the ejection to %v", st.name, got)
		}
		clk.Advance(st.want - time.Nanosecond)
		if byInst, _ := picks(t, b, d, 500); byInst[x.ID] != 0 {
			t.Fatalf("%s: picked 1ns before its return", st.name)
		}
		clk.Advance(time.Nanosecond)
		if byInst, _ := picks(t, b, d, 500); byInst[x.ID] == 0 {
			t.Fatalf("%s: not picked once its time is up", st.name)
		}
	}
	if got := b.Stats().Ejections; got != uint64(len(steps)) {
		t.Errorf("Ejections = %d; want %d", got, len(steps))
	}
}

func TestMaxEjectedPercent(t *testing.T) {
	for _, tc := range []struct {
		max       int
		instances int
		ejectable int
	}{
		{0, 4, 2}, // default 50
		{50, 4, 2},
		{50, 5, 2},
		{25, 4, 1},
		{10, 4, 0},
		{100, 4, 4},
		{200, 3, 3},
	} {
		b, clk := testBalancer(Config{MaxEjectedPercent: tc.max, PanicThreshold: -1})
		tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": tc.instances}))
		b.Prepare(tbl)
		for _, in := range d.Eligible {
			fail(b, in, 5)
		}
		s := b.Stats()
		if s.Ejections != uint64(tc.ejectable) || s.EjectionsSkipped != uint64(tc.instances-tc.ejectable) {
			t.Errorf("max %d%% of %d: ejections %d, skipped %d; want %d, %d",
				tc.max, tc.instances, s.Ejections, s.EjectionsSkipped, tc.ejectable, tc.instances-tc.ejectable)
		}
		// Once the ejected return, the skipped can be ejected.
		if tc.ejectable > 0 && tc.ejectable < tc.instances {
			clk.Advance(30 * time.Second)
			fail(b, d.Eligible[tc.instances-1], 5)
			if got := instStatus(t, allStatus(b), d.Eligible[tc.instances-1].ID).Ejected; !got {
				t.Errorf("max %d%% of %d: skipped instance not ejected once the others returned", tc.max, tc.instances)
			}
		}
	}
}

// Health is keyed by address and ID: it survives a reload that keeps the
// instance (as new objects), and is forgotten when a table drops it.
func TestStateAcrossTables(t *testing.T) {
	b, _ := testBalancer(Config{})
	ins := layout(map[string]int{"zone-a": 3, "zone-b": 3})
	t1, d1 := oneDep(t, nil, nil, ins)
	b.Prepare(t1)
	ejected, busy, gone := byID(t, d1, "zone-a-1"), byID(t, d1, "zone-a-2"), byID(t, d1, "zone-b-3")
	fail(b, ejected, 5)
	b.Begin(d1, busy)
	b.Begin(d1, busy)
	fail(b, gone, 4)

	// New objects for the same instances; zone-b-3 left.
	t2, d2 := oneDep(t, nil, nil, clone(ins[:5]))
	b.Prepare(t2)
	s := allStatus(b)
	if x := instStatus(t, s, "zone-a-1"); !x.Ejected {
		t.Errorf("ejection lost across reload")
	}
	if x := instStatus(t, s, "zone-a-2"); x.Outstanding != 2 {
		t.Errorf("outstanding across reload = %d; want 2", x.Outstanding)
	}
	for _, x := range s.Instances {
		if x.ID == "zone-b-3" {
			t.Errorf("removed instance still in status")
		}
	}
	if byInst, _ := picks(t, b, d2, 1000); byInst["zone-a-1"] != 0 {
		t.Errorf("ejected instance picked after reload")
	}
	b.End(d1, busy, OutcomeSuccess) // the old object
	b.End(d2, byID(t, d2, "zone-a-2"), OutcomeSuccess)
	if x := instStatus(t, allStatus(b), "zone-a-2"); x.Outstanding != 0 {
		t.Errorf("outstanding after End with old and new objects = %d; want 0", x.Outstanding)
	}
	// Its deployment is of the previous table: counted on the state of
	// the instance that left, which nothing reads.
	b.End(d1, gone, OutcomeSuccess)

	// zone-b-3 comes back: a fresh state.
	t3, _ := oneDep(t, nil, nil, clone(ins))
	b.Prepare(t3)
	if x := instStatus(t, allStatus(b), "zone-b-3"); x.ConsecutiveFailures != 0 || x.Outstanding != 0 {
		t.Errorf("returning instance: %+v; want a fresh state", x)
	}

	// An instance that moves to another address is another instance.
	moved := clone(ins)
	moved[0].Addr = "127.0.0.1:30001"
	t4, _ := oneDep(t, nil, nil, moved)
	b.Prepare(t4)
	if x := instStatus(t, allStatus(b), "zone-a-1"); x.Ejected {
		t.Errorf("instance at a new address kept the old address's ejection")
	}
}

// Instances in maintenance or of a generation without weight keep their
// state but take no part in MaxEjectedPercent or zone health.
func TestIneligibleInstances(t *testing.T) {
	ins := layout(map[string]int{"zone-a": 2, "zone-b": 2})
	ins[0].Maintenance = true
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	tbl, d := oneDep(t, nil, nil, ins)
	b.Prepare(tbl)
	fail(b, ins[0], 5)
	fail(b, ins[1], 5)
	s := allStatus(b)
	if x := instStatus(t, s, ins[0].ID); x.Eligible || !x.Ejected {
		t.Errorf("maintenance instance: %+v; want not eligible, ejected", x)
	}
	if z := zoneStatus(t, s, "zone-a"); z.State != StateDown || z.Eligible != 1 {
		t.Errorf("zone-a = %+v; want down (observed), 1 eligible", z)
	}
	if _, byZone := picks(t, b, d, 1000); byZone["zone-a"] != 0 {
		t.Errorf("zone-a picked %d times; want 0", byZone["zone-a"])
	}
}

// The active check state machine: thresholds of results in a row.
func TestCheckThresholds(t *testing.T) {
	b, _ := testBalancer(Config{Check: CheckConfig{Path: "/_health", HealthyThreshold: 2, UnhealthyThreshold: 3}})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2}))
	b.Prepare(tbl)
	in := d.Eligible[0]
	st := b.stateOf(b.lookup(in))
	for i, step := range []struct {
		ok   bool
		want string
	}{
		{true, "healthy"},
		{false, "healthy"},
		{false, "healthy"},
		{true, "healthy"}, // the run is broken
		{false, "healthy"},
		{false, "healthy"},
		{false, "unhealthy"},
		{true, "unhealthy"},
		{false, "unhealthy"}, // the run is broken
		{true, "unhealthy"},
		{true, "healthy"},
	} {
		detail := ""
		if !step.ok {
			detail = "status 500"
		}
		b.checked(st, step.ok, detail, 0)
		x := instStatus(t, allStatus(b), in.ID)
		if x.Check != step.want {
			t.Fatalf("step %d: state %q; want %q", i, x.Check, step.want)
		}
		if x.CheckError != detail {
			t.Errorf("step %d: check error %q; want %q", i, x.CheckError, detail)
		}
		if x.Check == "unhealthy" {
			if byInst, _ := picks(t, b, d, 200); byInst[in.ID] != 0 {
				t.Fatalf("step %d: unhealthy instance picked", i)
			}
		}
	}
	if s := b.Stats(); s.MarkedUnhealthy != 1 || s.MarkedHealthy != 1 || s.Checks != 11 || s.CheckFailures != 6 {
		t.Errorf("stats = %+v; want 1 marked unhealthy, 1 healthy, 11 checks, 6 failures", s)
	}
}

// Begin and End given the deployment find each instance's state through
// the deployment's view; without it, by address and ID. Both reach the
// one state of the instance, so a request may be counted either way.
func TestBeginEndThroughTheView(t *testing.T) {
	b, _ := testBalancer(Config{})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2, "zone-b": 2}))
	b.Prepare(tbl)
	if b.Pick(d) == nil {
		t.Fatal("no instance")
	}
	for k, in := range d.Eligible {
		b.Begin(d, in)
		for _, x := range allStatus(b).Instances {
			want := int64(0)
			if x.ID == in.ID {
				want = 1
			}
			if x.Outstanding != want {
				t.Fatalf("after Begin on %s: %s has %d outstanding; want %d", in.ID, x.ID, x.Outstanding, want)
			}
		}
		if k%2 == 0 {
			b.End(nil, in, OutcomeSuccess)
		} else {
			b.End(d, in, OutcomeSuccess)
		}
		if got := instStatus(t, allStatus(b), in.ID).Outstanding; got != 0 {
			t.Fatalf("after End on %s: %d outstanding; want 0", in.ID, got)
		}
	}
	// An instance that is not d's is found by address and ID.
	_, other := oneDep(t, nil, nil, clone(d.Instances[:1]))
	b.Begin(d, other.Instances[0])
	if got := instStatus(t, allStatus(b), other.Instances[0].ID).Outstanding; got != 1 {
		t.Fatalf("Begin with an instance object d does not have: %d outstanding; want 1", got)
	}
	b.End(d, other.Instances[0], OutcomeSuccess)
}
