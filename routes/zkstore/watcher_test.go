package zkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
)

// states collects what a Watcher publishes. A reader goroutine walks every
// published state's maps all the time, so that the race detector catches
// a watcher that modifies a state after publishing it.
type states struct {
	mu     sync.Mutex
	last   State
	n      int
	conn   *zk.Conn // the watcher's connection
	stales int      // publications with Stale after a synced one
}

func (s *states) get() (State, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.n
}

// watch runs a Watcher until the test ends.
func watch(t *testing.T, servers []string, root string, mod func(*Watcher)) *states {
	t.Helper()
	st := &states{}
	w := &Watcher{
		Servers:        servers,
		Root:           root,
		SessionTimeout: 4 * time.Second, // the tests of staleness set theirs shorter
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	w.onConn = func(c *zk.Conn) {
		st.mu.Lock()
		st.conn = c
		st.mu.Unlock()
	}
	if mod != nil {
		mod(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(s State) {
			checkChanged(t, st.last, s)
			if w.DepsOnly {
				if s.Deployments != nil || s.Versions != nil {
					t.Errorf("DepsOnly: a state with the maps Deployments and Versions")
				}
				if s.Deps != nil { // as the helpers read them
					s.Deployments = maps.Collect(s.Deps.All())
				}
			}
			st.mu.Lock()
			if s.Stale && st.last.Synced {
				st.stales++
			}
			st.last, st.n = s, st.n+1
			st.mu.Unlock()
		})
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ctx.Err() == nil {
			s, _ := st.get()
			n := 0
			for _, d := range s.Deployments {
				n += len(d.Instances) + len(d.Serving)
			}
			for range s.Zones {
				n++
			}
			for range s.Invalid {
				n++
			}
			_ = n
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return 5s after its context was cancelled")
		}
		<-readerDone
		st.mu.Lock()
		st.conn = nil
		st.mu.Unlock()
	})
	return st
}

// checkChanged checks what a published state says of its deployments
// against the state published before it: Base is its Deps, and Changed
// names exactly the entries that differ; and Deps holds what the map
// Deployments holds.
func checkChanged(t *testing.T, before, s State) {
	if s.Base != before.Deps {
		t.Errorf("version 0x%x: Base is not the Deps of the state before", s.Version)
		return
	}
	if s.Deps != nil && s.Deployments != nil {
		if len(s.Deployments) != s.Deps.Len() {
			t.Errorf("version 0x%x: %d Deployments; %d Deps", s.Version, len(s.Deployments), s.Deps.Len())
		}
		for id, d := range s.Deps.All() {
			if s.Deployments[id] != d {
				t.Errorf("version 0x%x: Deps and Deployments differ on %s", s.Version, id)
			}
		}
	}
	if s.Base == nil {
		return // the first table: Changed is not looked at
	}
	var changed []string
	for id, d := range s.Deps.All() {
		if b, ok := s.Base.Get(id); !ok || b != d {
			changed = append(changed, id)
		}
	}
	for id := range s.Base.All() {
		if _, ok := s.Deps.Get(id); !ok {
			changed = append(changed, id)
		}
	}
	slices.Sort(changed)
	if !slices.Equal(s.Changed, changed) {
		t.Errorf("version 0x%x: Changed %v; want %v", s.Version, s.Changed, changed)
	}
}

// testWriter sends log lines to the test log while the test runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// wait polls the last published state until cond holds, at most d.
// seen bounds the wait for a change to reach a watcher: it comes in
// milliseconds, but a loaded machine running the race detector can stall
// a ZooKeeper server or the watcher for seconds.
const seen = 10 * time.Second

func (s *states) wait(t *testing.T, d time.Duration, what string, cond func(State) bool) State {
	t.Helper()
	var st State
	testutil.EventuallyErr(t, d, what, func() error {
		if st, _ = s.get(); cond(st) {
			return nil
		}
		return fmt.Errorf("last state: stale=%v synced=%v version=0x%x problem=%q deployments=%d invalid=%v",
			st.Stale, st.Synced, st.Version, st.Problem, len(st.Deployments), st.Invalid)
	})
	return st
}

// caughtUp waits until the watcher has published the store's current
// version.
func (s *states) caughtUp(t *testing.T, store *Store, what string) State {
	t.Helper()
	snap, err := store.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.wait(t, seen, what+": the store's version", func(st State) bool { return st.Version == snap.Version })
}

func (s *states) watcherConn() *zk.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

func synced(n int) func(State) bool {
	return func(s State) bool { return s.Synced && !s.Stale && len(s.Deployments) == n }
}

// matchesStore checks that the state holds what the store holds now, and
// has its version.
func matchesStore(t *testing.T, s *Store, st State) {
	t.Helper()
	snap, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != snap.Version {
		t.Errorf("version: watcher 0x%x; store 0x%x", st.Version, snap.Version)
	}
	if !maps.Equal(st.Zones, snap.Zones) || st.Domain != snap.Domain {
		t.Errorf("zones/domain: watcher %v %q; store %v %q", st.Zones, st.Domain, snap.Zones, snap.Domain)
	}
	if len(st.Deployments) != len(snap.Deployments) {
		t.Errorf("deployments: watcher %d; store %d", len(st.Deployments), len(snap.Deployments))
	}
	for id, d := range snap.Deployments {
		if got := st.Deployments[id]; got == nil || describe(got) != describe(d) {
			t.Errorf("deployment %s: watcher %v; store %s", id, got, describe(d))
		}
	}
}

func instanceOf(st State, dep, id string) *routes.Instance {
	d := st.Deployments[dep]
	if d == nil {
		return nil
	}
	for _, in := range d.Instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func setJSON(t *testing.T, conn *zk.Conn, p string, v any) {
	t.Helper()
	if _, err := conn.Set(p, encode(v), -1); err != nil {
		t.Fatalf("set %s: %v", p, err)
	}
}

const canaryID = "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"

// modes runs f as a subtest with the persistent watch and another with
// one-shot watches (a server before 3.6): each calls t.Parallel itself.
func modes(t *testing.T, f func(t *testing.T, mode func(*Watcher))) {
	t.Run("persistent", func(t *testing.T) { f(t, func(*Watcher) {}) })
	t.Run("one-shot", func(t *testing.T) { f(t, func(w *Watcher) { w.oneShot = true }) })
}

// with applies mods in order (nil ones skipped).
func with(mods ...func(*Watcher)) func(*Watcher) {
	return func(w *Watcher) {
		for _, m := range mods {
			if m != nil {
				m(w)
			}
		}
	}
}

func TestWatcherSeesNestedEdits(t *testing.T) {
	modes(t, func(t *testing.T, mode func(*Watcher)) {
		t.Parallel()
		testNestedEdits(t, mode)
	})
}

// The same with the deployments only in State.Deps: what the watcher
// publishes and what it says changed hold alike.
func TestWatcherDepsOnlySeesNestedEdits(t *testing.T) {
	modes(t, func(t *testing.T, mode func(*Watcher)) {
		t.Parallel()
		testNestedEdits(t, with(mode, func(w *Watcher) { w.DepsOnly = true }))
	})
}

// watchCount is the server's count of watches (mntr's zk_watch_count).
func watchCount(t *testing.T, server string) int {
	t.Helper()
	out, err := zktest.FourLetterWord(server, "mntr", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "zk_watch_count\t"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("mntr: %q", line)
			}
			return n
		}
	}
	t.Fatalf("mntr has no zk_watch_count:\n%s", out)
	return 0
}

func testNestedEdits(t *testing.T, mod func(*Watcher)) {
	s, conn := testStore(t)
	ctx := context.Background()
	tab := parse(t, "canary.yaml")
	if _, err := s.Apply(ctx, tab, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	w := watch(t, []string{conn.Server()}, s.Root(), mod)
	st := w.wait(t, seen, "first sync", synced(3))
	matchesStore(t, s, st)

	l := layout{root: s.Root()}
	inst := func(id string) string { return l.instance(canaryID, id) }
	edits := []struct {
		name string
		do   func()
		seen func(State) bool
	}{
		{"instance addr", func() {
			setJSON(t, conn, inst("i-0001"), InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:29201", Zone: "zone-a", Generation: "blue"}})
		}, func(st State) bool {
			in := instanceOf(st, canaryID, "i-0001")
			return in != nil && in.Addr == "127.0.0.1:29201"
		}},
		{"maintenance", func() {
			setJSON(t, conn, inst("i-0002"), InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:19202", Zone: "zone-b", Generation: "blue", Maintenance: true}})
		}, func(st State) bool { in := instanceOf(st, canaryID, "i-0002"); return in != nil && in.Maintenance }},
		{"serving weights", func() {
			if _, err := s.SetServing(ctx, canaryID, map[string]int{"blue": 50, "green": 50, "red": 0}); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool { return st.Deployments[canaryID].Serving["green"] == 50 }},
		{"zone state", func() {
			if _, err := s.SetZone(ctx, "zone-c", routes.ZoneUp); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool { z, ok := st.Zones["zone-c"]; return ok && z == routes.ZoneUp }},
		{"new instance", func() {
			if _, err := conn.Create(inst("i-0007"), encode(InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:19207", Zone: "zone-b", Generation: "green"}}), 0, acl); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool { return instanceOf(st, canaryID, "i-0007") != nil }},
		{"deleted instance", func() {
			if err := conn.Delete(inst("i-0006"), -1); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool {
			return instanceOf(st, canaryID, "i-0006") == nil && instanceOf(st, canaryID, "i-0007") != nil
		}},
		{"new deployment", func() {
			next := parseString(t, twoDeps)
			if _, err := s.Apply(ctx, next, ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool { return st.Deployments["aaaaaaaa"] != nil && st.Deployments["bbbbbbbb"] != nil }},
		{"deleted deployment", func() {
			next := parseString(t, twoDeps)
			if _, err := s.Apply(ctx, next, ApplyOptions{Prune: true}); err != nil {
				t.Fatal(err)
			}
		}, func(st State) bool { return st.Deployments[canaryID] == nil && len(st.Deployments) == 2 }},
	}
	for _, e := range edits {
		_, before := w.get()
		start := time.Now()
		e.do()
		st := w.wait(t, seen, e.name, e.seen)
		_, after := w.get()
		t.Logf("%s: seen after %v (%d publications)", e.name, time.Since(start).Round(time.Millisecond), after-before)
		// Let any later event of the same write land, then compare.
		st = w.caughtUp(t, s, e.name)
		matchesStore(t, s, st)
		if len(st.Invalid) != 0 {
			t.Errorf("%s: invalid: %v", e.name, st.Invalid)
		}
	}
	// The persistent watch is one watch on the server whatever the table
	// (which mntr counts as 2 in ZooKeeper 3.8: a data and a child
	// watch); one-shot watches are one or more per znode.
	var probe Watcher
	mod(&probe)
	n := watchCount(t, conn.Server())
	if !probe.oneShot && n > 2 || probe.oneShot && n < 10 {
		t.Errorf("one-shot=%v: the server holds %d watches", probe.oneShot, n)
	}
}

func TestWatcherInvalidKeepsLastGood(t *testing.T) { modes(t, testWatcherInvalidKeepsLastGood) }

func testWatcherInvalidKeepsLastGood(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "design-example.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	const id = "7f3a9c2e51d04b8e"
	w := watch(t, []string{conn.Server()}, s.Root(), with(mode, nil))
	good := w.wait(t, seen, "first sync", synced(1)).Deployments[id]
	l := layout{root: s.Root()}

	keepsGood := func(what, wantErr string) {
		t.Helper()
		st := w.wait(t, seen, what, func(st State) bool { return strings.Contains(st.Invalid[id], wantErr) })
		// By content: a valid state between two writes of one step may
		// be published in between, as a new but equal deployment.
		if !reflect.DeepEqual(st.Deployments[id], good) {
			t.Errorf("%s: deployment not kept at its last good version: %+v, want %+v", what, st.Deployments[id], good)
		}
		if st.Problem != "" || st.Stale {
			t.Errorf("%s: problem %q stale %v", what, st.Problem, st.Stale)
		}
	}
	if _, err := conn.Set(l.deployment(id), []byte(`{"kind":`), -1); err != nil {
		t.Fatal(err)
	}
	keepsGood("bad JSON", l.deployment(id)+": bad JSON")

	setJSON(t, conn, l.deployment(id), DeploymentData{DeploymentSpec: routes.DeploymentSpec{Kind: "es", Serving: map[string]int{"green": 100}}})
	keepsGood("generation not in serving", l.deployment(id)+`: deployment `+id+`: instance i-0001: generation "blue" is not in serving`)

	setJSON(t, conn, l.deployment(id), DeploymentData{DeploymentSpec: routes.DeploymentSpec{Kind: "es", Aliases: []string{"prod-search"}, Serving: map[string]int{"blue": 100}}})
	setJSON(t, conn, l.instance(id, "i-0001"), InstanceData{Instance: routes.Instance{Addr: "nowhere", Zone: "zone-a", Generation: "blue"}})
	keepsGood("bad addr", `instance i-0001: addr "nowhere" is not host:port`)

	if _, err := conn.Set(l.instance(id, "i-0002"), []byte(`[]`), -1); err != nil {
		t.Fatal(err)
	}
	keepsGood("instance not an object", l.instance(id, "i-0002")+": bad JSON")

	// A bad zone keeps its last state; a new invalid deployment stays out.
	if _, err := conn.Set(l.zone("zone-b"), []byte(`{"state":"sideways"}`), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(l.deployment("0badbad0"), []byte(`{"kind":"es"}`), 0, acl); err != nil {
		t.Fatal(err)
	}
	st := w.wait(t, seen, "bad zone and new bad deployment", func(st State) bool {
		return st.Invalid["zones/zone-b"] != "" && st.Invalid["0badbad0"] != ""
	})
	if st.Zones["zone-b"] != routes.ZoneDown {
		t.Errorf("zone-b: got %v; want its last good state down", st.Zones["zone-b"])
	}
	if _, ok := st.Deployments["0badbad0"]; ok {
		t.Error("an invalid deployment without a good version is in the table")
	}
	if !strings.Contains(st.Invalid["0badbad0"], "/deployments/0badbad0/instances: no instances znode") {
		t.Errorf("0badbad0: %q", st.Invalid["0badbad0"])
	}

	// Fixed: valid again, and the table moves on.
	tab := parseString(t, strings.Replace(mustRead(t, "design-example.yaml"), "127.0.0.1:19201", "127.0.0.1:39201", 1))
	if _, err := s.Apply(ctx, tab, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Delete(l.deployment("0badbad0"), -1); err != nil {
		t.Fatal(err)
	}
	st = w.wait(t, seen, "valid again", func(st State) bool {
		in := instanceOf(st, id, "i-0001")
		return len(st.Invalid) == 0 && in != nil && in.Addr == "127.0.0.1:39201"
	})
	matchesStore(t, s, st)
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "routesfile", "testdata", "good", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deleteTree deletes p and everything under it.
func deleteTree(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	if err := removeTree(conn, p); err != nil {
		t.Fatal(err)
	}
}

// removeTree is deleteTree for a goroutine other than the test's: it
// returns the error instead of failing the test.
func removeTree(conn *zk.Conn, p string) error {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := removeTree(conn, p+"/"+c); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

func TestWatcherMissingRootNeverWipes(t *testing.T) { modes(t, testWatcherMissingRootNeverWipes) }

func testWatcherMissingRootNeverWipes(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	w := watch(t, []string{conn.Server()}, s.Root(), with(mode, nil))

	// Nothing to read yet: not synced.
	st := w.wait(t, seen, "before the root exists", func(st State) bool { return strings.Contains(st.Problem, "does not exist") })
	if st.Synced {
		t.Fatalf("before the root exists: synced=%v problem=%q; want not synced, a problem", st.Synced, st.Problem)
	}
	if _, err := s.Apply(ctx, parse(t, "design-example.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	good := w.wait(t, seen, "root created", synced(1))

	deleteTree(t, conn, s.Root()+"/deployments")
	st = w.wait(t, seen, "deployments deleted", func(st State) bool { return st.Problem != "" })
	// (The deployment and version may have moved: its instances were
	// deleted one by one before it.)
	if len(st.Deployments) != 1 || st.Version < good.Version || !st.Synced {
		t.Errorf("after the deployments container went: %d deployments, version 0x%x (want the last good one, >= 0x%x)", len(st.Deployments), st.Version, good.Version)
	}
	if _, err := conn.Create(s.Root()+"/deployments", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	st = w.wait(t, seen, "empty deployments container", func(st State) bool { return strings.Contains(st.Problem, "no deployments") })
	if len(st.Deployments) != 1 {
		t.Errorf("empty deployments container: %d deployments, problem %q; want the last good one kept", len(st.Deployments), st.Problem)
	}

	deleteTree(t, conn, s.Root())
	st = w.wait(t, seen, "root deleted", func(st State) bool { return strings.Contains(st.Problem, s.Root()+" does not exist") })
	if len(st.Deployments) != 1 || st.Domain != "example.test" || st.Zones["zone-b"] != routes.ZoneDown {
		t.Errorf("after the root went: %+v", st.Snapshot)
	}

	tab := parse(t, "canary.yaml")
	if _, err := s.Apply(ctx, tab, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	st = w.wait(t, seen, "root back", func(st State) bool { return st.Problem == "" && len(st.Deployments) == 3 })
	matchesStore(t, s, st)
}

func TestWatcherConfigErrors(t *testing.T) {
	for _, c := range []struct {
		w    Watcher
		want string
	}{
		{Watcher{Servers: []string{"127.0.0.1:1"}, Root: "rel"}, "root"},
		{Watcher{}, "no servers"},
		{Watcher{Servers: []string{"127.0.0.1:1"}, Register: &Registration{Name: "a/b"}}, "registration"},
	} {
		err := c.w.Run(context.Background(), func(State) {})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v; want an error about %s", c.w, err, c.want)
		}
	}
}

// Two writers apply different versions of one deployment at the same time.
// The version guard keeps their transactions from interleaving, so the
// store always holds one or the other whole; and since the watcher
// publishes only once no event is waiting, it never publishes a mix (which
// would be invalid: instances of a generation not in serving).
func TestConcurrentWritersNeverInterleave(t *testing.T) {
	modes(t, testConcurrentWritersNeverInterleave)
}

func testConcurrentWritersNeverInterleave(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.Start(t)
	variant := func(gen, prefix string, port int) *routes.Table {
		return parseString(t, fmt.Sprintf(`domain: example.test
deployments:
  - id: aaaaaaaa
    kind: es
    serving: {%[1]s: 100}
    instances:
      - {id: %[2]s-1, addr: 127.0.0.1:%[3]d, zone: zone-a, generation: %[1]s}
      - {id: %[2]s-2, addr: 127.0.0.1:%[4]d, zone: zone-b, generation: %[1]s}
`, gen, prefix, port, port+1))
	}
	a, b := variant("blue", "a", 1000), variant("green", "b", 2000)
	root := newRoot(t)
	sa, _ := New(zktest.Connect(t, e.Servers(), 4*time.Second), root)
	sb, _ := New(zktest.Connect(t, e.Servers(), 4*time.Second), root)
	ctx := context.Background()
	if _, err := sa.Apply(ctx, a, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	w := watch(t, e.Servers(), root, with(mode, nil))
	w.wait(t, seen, "first sync", synced(1))

	pure := func(d *routes.DeploymentSpec) bool {
		if d == nil || len(d.Instances) != 2 || len(d.Serving) != 1 {
			return false
		}
		p := d.Instances[0].ID[:1]
		return d.Instances[1].ID[:1] == p && (p == "a") == (d.Serving["blue"] == 100)
	}
	stop := make(chan struct{})
	var bad []string
	var mu sync.Mutex
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		seen := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, n := w.get()
			if n != seen {
				seen = n
				if d := st.Deployments["aaaaaaaa"]; !pure(d) || len(st.Invalid) != 0 {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("publication %d: %v invalid=%v", n, d, st.Invalid))
					mu.Unlock()
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	for _, c := range []struct {
		s *Store
		t *routes.Table
	}{{sa, a}, {sb, b}, {sa, b}, {sb, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := c.s.Apply(ctx, c.t, ApplyOptions{}); err != nil && !errors.Is(err, ErrConflict) {
					t.Errorf("apply: %v", err)
				}
				snap, err := c.s.Read(ctx)
				if err != nil {
					t.Errorf("read: %v", err)
					continue
				}
				if !pure(snap.Deployments["aaaaaaaa"]) || len(snap.Invalid) != 0 {
					t.Errorf("store holds a mix: %v %v", snap.Deployments["aaaaaaaa"], snap.Invalid)
				}
			}
		}()
	}
	wg.Wait()
	st := w.caughtUp(t, sa, "the last write")
	close(stop)
	<-checked
	for _, b := range bad {
		t.Error(b)
	}
	_, n := w.get()
	t.Logf("%d publications", n)
	matchesStore(t, sa, st)
}

// A watcher that starts while writes go on (changed weights, deployments
// created and deleted) must end on the store's content and version: a
// write between the watch and the read of its deployment, or one that the
// read saw half-way, is named by an event and read again.
func TestWatcherStartsDuringWrites(t *testing.T) { modes(t, testWatcherStartsDuringWrites) }

func testWatcherStartsDuringWrites(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	const n = 600
	var b strings.Builder
	b.WriteString("domain: example.test\nzones: {zone-a: up}\ndeployments:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - id: d%07d\n    kind: es\n    serving: {blue: 100}\n    instances:\n      - {id: i-1, addr: 127.0.0.1:%d, zone: zone-a, generation: blue}\n", i, 1000+i)
	}
	if _, err := s.Apply(ctx, parseString(t, b.String()), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	l := layout{root: s.Root()}
	stop := make(chan struct{})
	done := make(chan struct{})
	var writes atomic.Int64
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("d%07d", (i*7919)%n)
			if _, err := s.SetServing(ctx, id, map[string]int{"blue": 1 + i%99}); err != nil {
				t.Errorf("set serving %s: %v", id, err)
				return
			}
			extra := fmt.Sprintf("e%07d", i%5)
			if i%2 == 0 {
				if err := removeTree(conn, l.deployment(extra)); err != nil {
					t.Errorf("delete %s: %v", extra, err)
					return
				}
			} else if _, err := s.Apply(ctx, parseString(t, fmt.Sprintf("domain: example.test\nzones: {zone-a: up}\ndeployments:\n  - id: %s\n    kind: kb\n    serving: {blue: 1}\n    instances:\n      - {id: k-1, addr: 127.0.0.1:9, zone: zone-a, generation: blue}\n", extra)), ApplyOptions{}); err != nil {
				t.Errorf("apply %s: %v", extra, err)
				return
			}
			writes.Add(1)
		}
	}()
	// The watcher starts while writes go on, and they go on after its
	// first table.
	testutil.Eventually(t, seen, "writes under way", func() bool { return writes.Load() >= 10 })
	w := watch(t, []string{conn.Server()}, s.Root(), mode)
	w.wait(t, seen, "first sync", func(st State) bool { return st.Synced && !st.Stale })
	after := writes.Load()
	testutil.Eventually(t, seen, "writes after the first table", func() bool { return writes.Load() >= after+10 })
	close(stop)
	<-done
	st := w.caughtUp(t, s, "after the writes")
	matchesStore(t, s, st)
}
