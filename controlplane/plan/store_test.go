package plan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/internal/testing/zktest"
)

const id = "7f3a9c2e51d04b8e"

func testPlan() *Plan {
	return &Plan{Deployment: id, Kind: "es", Aliases: []string{"search"}, Zones: 3, PerZone: 1,
		MemoryBytes: 4 << 30, Spec: []byte(`{"version":"8.13.0"}`)}
}

func newStore(t *testing.T) (*zktest.Ensemble, *zk.Conn, *Store) {
	t.Helper()
	e := zktest.Start(t)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	return e, conn, New(conn, "/sy/a")
}

func stat(t *testing.T, conn *zk.Conn, p string) *zk.Stat {
	t.Helper()
	_, st, err := conn.Get(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return st
}

// A plan goes in, comes out equal; applying it again writes nothing (the
// znode's version and last zxid stay); a change counts one revision.
func TestApplyReadRevisions(t *testing.T) {
	_, conn, s := newStore(t)
	res, err := s.Apply(testPlan())
	if err != nil {
		t.Fatal(err)
	}
	if res != (ApplyResult{Deployment: id, Revision: 1, Created: true, Changed: true}) {
		t.Errorf("first apply: %+v", res)
	}
	data, _, err := conn.Get("/sy/a/plans/" + id)
	if err != nil {
		t.Fatal(err)
	}
	// The znode holds the plan but for its deployment, and the revision.
	const wantData = `{"kind":"es","aliases":["search"],"zones":3,"per_zone":1,"memory_bytes":4294967296,"spec":{"version":"8.13.0"},"strategy":"grow_and_shrink","revision":1}`
	if string(data) != wantData {
		t.Errorf("znode:\n%s\nwant\n%s", data, wantData)
	}
	r, err := s.Read(id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Plan.Equal(testPlan()) || r.Plan.Deployment != id || r.Revision != 1 || r.Status != nil || r.StatusVersion != NoStatus {
		t.Errorf("read back %+v, plan %+v", r, r.Plan)
	}

	before := stat(t, conn, s.Path(id))
	same := testPlan()
	same.Strategy = GrowAndShrink                    // the default, spelled out
	same.Spec = []byte(` { "version" : "8.13.0" } `) // the same JSON value
	for range 2 {
		res, err := s.Apply(same)
		if err != nil || res != (ApplyResult{Deployment: id, Revision: 1, Previous: 1}) {
			t.Errorf("identical apply: %+v, %v; want unchanged at revision 1", res, err)
		}
	}
	if after := stat(t, conn, s.Path(id)); after.Version != before.Version || after.Mzxid != before.Mzxid {
		t.Errorf("identical apply moved the znode: version %d -> %d, mzxid %d -> %d", before.Version, after.Version, before.Mzxid, after.Mzxid)
	}

	p := testPlan()
	for i, change := range []func(*Plan){
		func(p *Plan) { p.Zones = 2 },
		func(p *Plan) { p.Spec = []byte(`{"version":"8.14.0"}`) },
		func(p *Plan) { p.Strategy = Rolling },
	} {
		change(p)
		res, err := s.Apply(p)
		if err != nil || res != (ApplyResult{Deployment: id, Revision: i + 2, Previous: i + 1, Changed: true}) {
			t.Errorf("change %d: %+v, %v; want revision %d (was %d)", i+1, res, err, i+2, i+1)
		}
	}
	if st := stat(t, conn, s.Path(id)); st.Version != before.Version+3 {
		t.Errorf("after three changes the znode's version is %d; want %d", st.Version, before.Version+3)
	}

	// Invalid: refused before anything is read or written.
	bad := testPlan()
	bad.PerZone = 0
	if _, err := s.Apply(bad); !errors.Is(err, ErrInvalid) || err.Error() != "plan: deployment "+id+": per_zone 0 is out of range 1-100" {
		t.Errorf("invalid plan: %v", err)
	}
	if _, err := s.Read("nope"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read of a bad ID: %v", err)
	}
	if _, err := s.Read("0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read of no plan: %v", err)
	}
}

// Statuses: created once, then replaced at the version read; a stale
// version is a conflict; Delete refuses a running change unless forced
// and takes the status with the plan.
func TestStatusAndDelete(t *testing.T) {
	_, conn, s := newStore(t)
	if _, err := s.WriteStatus(id, &Status{State: StatePending, Revision: 1}, NoStatus); !errors.Is(err, ErrNotFound) {
		t.Errorf("status of no plan: %v", err)
	}
	if _, err := s.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	st := &Status{State: StateRunning, Step: "place", Revision: 1, Generation: "r1", StartedAt: at, UpdatedAt: at,
		Zxid: 0x100000005, DrainUntil: at.Add(time.Minute),
		Instances: map[string]InstanceProgress{"i-1": {Allocator: "host-1", Zone: "zone-a", State: "starting"}},
		History:   []HistoryEntry{{Revision: 1, State: StatePending, At: at}}}
	v, err := s.WriteStatus(id, st, NoStatus)
	if err != nil || v != 0 {
		t.Fatalf("create: %d, %v", v, err)
	}
	if _, err := s.WriteStatus(id, st, NoStatus); !errors.Is(err, ErrConflict) {
		t.Errorf("a second create: %v", err)
	}
	if _, err := s.WriteStatus(id, &Status{State: "busy", Revision: 1}, v); !errors.Is(err, ErrInvalid) ||
		err.Error() != `plan: status: state "busy" is not pending, running, done, failed or rolled_back` {
		t.Errorf("a bad state: %v", err)
	}
	got, gv, err := s.ReadStatus(id)
	if err != nil || gv != v || got.Step != "place" || got.Instances["i-1"].Allocator != "host-1" || !got.StartedAt.Equal(at) ||
		got.Zxid != 0x100000005 || !got.DrainUntil.Equal(at.Add(time.Minute)) {
		t.Errorf("ReadStatus: %+v, %d, %v", got, gv, err)
	}

	// History is kept to MaxHistory, the newest.
	long := *st
	for i := range MaxHistory + 5 {
		long.History = append(long.History, HistoryEntry{Revision: 1, State: StateRunning, Step: fmt.Sprint(i), At: at})
	}
	v2, err := s.WriteStatus(id, &long, v)
	if err != nil || v2 != v+1 {
		t.Fatalf("set: %d, %v", v2, err)
	}
	if got, _, _ := s.ReadStatus(id); len(got.History) != MaxHistory || got.History[MaxHistory-1].Step != fmt.Sprint(MaxHistory+4) {
		t.Errorf("history of %d entries, last %+v; want %d ending with the newest", len(got.History), got.History[len(got.History)-1], MaxHistory)
	}
	if _, err := s.WriteStatus(id, st, v); !errors.Is(err, ErrConflict) {
		t.Errorf("a write at a stale version: %v", err)
	}

	r, err := s.Delete(id, DeleteOptions{})
	if !errors.Is(err, ErrRunning) || err.Error() != `plan: a change is running: `+id+`: revision 1, step "place"` {
		t.Errorf("delete while running: %v", err)
	}
	if r == nil || r.Status == nil || r.Revision != 1 {
		t.Errorf("delete while running returned %+v", r)
	}
	if _, err := s.Read(id); err != nil {
		t.Errorf("refused delete removed the plan: %v", err)
	}
	// A status written between Delete's read and its write: nothing goes.
	s.beforeWrite = func() {
		done := *st
		done.State = StateDone
		if _, err := New(conn, "/sy/a").WriteStatus(id, &done, v2); err != nil {
			t.Error(err)
		}
	}
	if _, err := s.Delete(id, DeleteOptions{Force: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("delete after the status changed: %v", err)
	}
	s.beforeWrite = nil
	if _, err := s.Read(id); err != nil {
		t.Errorf("a delete that lost its race removed the plan: %v", err)
	}
	r, err = s.Delete(id, DeleteOptions{}) // done now: no force needed
	if err != nil || r.Revision != 1 || r.Status.State != StateDone {
		t.Fatalf("delete: %+v, %v", r, err)
	}
	for _, p := range []string{s.Path(id), s.StatusPath(id)} {
		if ok, _, _ := conn.Exists(p); ok {
			t.Errorf("%s left after delete", p)
		}
	}
	if _, err := s.Delete(id, DeleteOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of no plan: %v", err)
	}

	// Force deletes a running one.
	if _, err := s.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteStatus(id, st, NoStatus); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(id, DeleteOptions{Force: true}); err != nil {
		t.Errorf("forced delete: %v", err)
	}
}

// Two writers: the one whose znode changed between its read and its write
// gets ErrConflict and writes nothing; the other's plan stands.
func TestApplyConflict(t *testing.T) {
	e, _, a := newStore(t)
	b := New(zktest.Connect(t, e.Servers(), 4*time.Second), "/sy/a")
	if _, err := a.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	pa, pb := testPlan(), testPlan()
	pa.Zones, pb.Zones = 2, 4
	a.beforeWrite = func() {
		if res, err := b.Apply(pb); err != nil || res.Revision != 2 {
			t.Errorf("the other writer: %+v, %v", res, err)
		}
	}
	if _, err := a.Apply(pa); !errors.Is(err, ErrConflict) {
		t.Errorf("the writer that lost: %v; want ErrConflict", err)
	}
	r, err := a.Read(id)
	if err != nil || r.Revision != 2 || r.Plan.Zones != 4 {
		t.Errorf("stored: %+v, %v; want the other writer's plan at revision 2", r, err)
	}

	// Creating races the same way.
	const other = "0123456789abcdef"
	po := testPlan()
	po.Deployment = other
	a.beforeWrite = func() {
		if _, err := b.Apply(po); err != nil {
			t.Error(err)
		}
	}
	if _, err := a.Apply(po); !errors.Is(err, ErrConflict) {
		t.Errorf("a create that lost: %v; want ErrConflict", err)
	}
	a.beforeWrite = nil
}

// Many writers that each read again after a conflict all get their plan
// written, one after another: every revision is counted once.
func TestConcurrentApplySerializes(t *testing.T) {
	e, _, s := newStore(t)
	if _, err := s.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	const writers = 6
	revs := make([]int, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := New(zktest.Connect(t, e.Servers(), 4*time.Second), "/sy/a")
			p := testPlan()
			p.PerZone = 10 + i // a plan of its own
			for attempt := 0; attempt < 50; attempt++ {
				res, err := w.Apply(p)
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
				}
				revs[i] = res.Revision
				return
			}
			t.Errorf("writer %d: still in conflict after 50 attempts", i)
		}()
	}
	wg.Wait()
	slices.Sort(revs)
	want := []int{2, 3, 4, 5, 6, 7}
	if !slices.Equal(revs, want) {
		t.Errorf("revisions written %v; want %v", revs, want)
	}
	r, err := s.Read(id)
	if err != nil || r.Revision != 1+writers {
		t.Errorf("stored revision %+v, %v; want %d", r, err, 1+writers)
	}
}

// List: every plan by ID with its status; one that does not decode is
// listed with why.
func TestList(t *testing.T) {
	_, conn, s := newStore(t)
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Errorf("List with no plans: %v, %v", l, err)
	}
	p2 := testPlan()
	p2.Deployment = "0123456789abcdef"
	for _, p := range []*Plan{testPlan(), p2} {
		if _, err := s.Apply(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.WriteStatus(id, &Status{State: StateDone, Revision: 1}, NoStatus); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(s.Path("00000000aaaaaaaa"), []byte(`{"kind":"es","cpu":1}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	l, err := s.List()
	if err != nil || len(l) != 3 {
		t.Fatalf("List: %v, %v", l, err)
	}
	if l[0].Deployment != "00000000aaaaaaaa" || l[0].Invalid != `/sy/a/plans/00000000aaaaaaaa: unknown key "cpu"` || l[0].Plan != nil {
		t.Errorf("invalid plan: %+v", l[0])
	}
	if l[1].Deployment != "0123456789abcdef" || l[1].Status != nil || l[2].Deployment != id || l[2].Status == nil || l[2].Status.State != StateDone {
		t.Errorf("plans: %+v, %+v", l[1], l[2])
	}
	if _, err := s.Read("00000000aaaaaaaa"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read of an invalid plan: %v", err)
	}
	// Apply replaces a plan that does not decode, counting on from its
	// revision.
	p3 := testPlan()
	p3.Deployment = "00000000aaaaaaaa"
	if res, err := s.Apply(p3); err != nil || res.Revision != 1 || !res.Changed {
		t.Errorf("apply over an invalid plan: %+v, %v", res, err)
	}
}

// Wait follows the status of one revision to its end, reporting each
// state and step once.
func TestWait(t *testing.T) {
	_, conn, s := newStore(t)
	if _, err := s.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	w := New(conn, "/sy/a")
	steps := []Status{
		{State: StatePending, Revision: 1},
		{State: StateRunning, Step: "place", Revision: 1},
		{State: StateRunning, Step: "place", Revision: 1, Instances: map[string]InstanceProgress{"i-1": {State: "starting"}}},
		{State: StateRunning, Step: "cutover", Revision: 1},
		{State: StateDone, Step: "cutover", Revision: 1, Generation: "r1"},
	}
	seen := make(chan *Status, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var final *Status
	go func() {
		var err error
		final, err = s.Wait(ctx, id, 1, func(st *Status) { seen <- st })
		done <- err
	}()
	if st := <-seen; st != nil {
		t.Errorf("first report %+v; want nil (no status yet)", st)
	}
	v := NoStatus
	for i, st := range steps {
		var err error
		if v, err = w.WriteStatus(id, &st, v); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			continue // the same state and step: not reported
		}
		select {
		case got := <-seen:
			if got.State != st.State || got.Step != st.Step {
				t.Errorf("report %+v; want %s %s", got, st.State, st.Step)
			}
		case <-ctx.Done():
			t.Fatalf("no report of %s %s", st.State, st.Step)
		}
	}
	if err := <-done; err != nil || final.State != StateDone || final.Generation != "r1" {
		t.Errorf("Wait: %+v, %v", final, err)
	}
	if len(seen) != 0 {
		t.Errorf("%d reports more than the changes", len(seen))
	}

	// A newer revision supersedes the one waited for; a deleted plan
	// ends the wait.
	p := testPlan()
	p.Zones = 2
	if _, err := s.Apply(p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(ctx, id, 1, nil); !errors.Is(err, ErrSuperseded) {
		t.Errorf("Wait for revision 1 at revision 2: %v", err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		if _, err := w.Delete(id, DeleteOptions{}); err != nil {
			t.Error(err)
		}
	}()
	if _, err := s.Wait(ctx, id, 2, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait while the plan is deleted: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if _, err := s.Apply(testPlan()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(short, id, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with no constructor: %v", err)
	}
}
