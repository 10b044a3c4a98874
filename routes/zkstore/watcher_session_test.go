package zkstore

// The watcher across connection faults: a paused server, partitions
// shorter and longer than the session, an expired session, a lost quorum.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
)

func TestWatcherStaleWhileServerPaused(t *testing.T) { modes(t, testWatcherStaleWhileServerPaused) }

func testWatcherStaleWhileServerPaused(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.Start(t)
	_, s := appliedStore(t, e.Servers(), "design-example.yaml")
	ctx := context.Background()
	w := watch(t, e.Servers(), s.Root(), with(mode, shortSession))
	good := w.wait(t, seen, "first sync", synced(1))

	e.Pause(0)
	st := w.wait(t, seen, "stale while paused", func(st State) bool { return st.Stale })
	if len(st.Deployments) != 1 || st.Version != good.Version || !st.Synced || !st.LastSync.Equal(good.LastSync) && st.LastSync.Before(good.LastSync) {
		t.Errorf("stale state lost data: %+v", st)
	}
	e.Resume(0)
	w.wait(t, seen, "fresh after resume", func(st State) bool { return !st.Stale })
	// The store's own connection may need a moment too.
	testutil.EventuallyErr(t, 10*time.Second, "a write after resume", func() error {
		_, err := s.SetServing(ctx, "7f3a9c2e51d04b8e", map[string]int{"blue": 7})
		return err
	})
	st = w.wait(t, seen, "change after resume", func(st State) bool {
		return st.Deployments["7f3a9c2e51d04b8e"].Serving["blue"] == 7
	})
	matchesStore(t, s, st)
}

// appliedStore connects to servers, makes a store under a new root and
// applies the routes file testdata/file to it.
func appliedStore(t *testing.T, servers []string, file string) (*zk.Conn, *Store) {
	t.Helper()
	conn := zktest.Connect(t, servers, 4*time.Second)
	s, err := New(conn, newRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), parse(t, file), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	return conn, s
}

// shortSession gives a watcher a 1s session, for the tests that wait for it
// to go stale or expire. The others keep 4s: a loaded machine can stall a
// ZooKeeper server or the watcher past 1s, which is not what they test.
func shortSession(w *Watcher) { w.SessionTimeout = time.Second }

func registration(name string) func(*Watcher) {
	return func(w *Watcher) {
		w.Register = &Registration{Name: name, URL: "http://127.0.0.1:9280"}
	}
}

// ownerOf returns the session that owns an ephemeral znode, 0 if none.
func ownerOf(conn *zk.Conn, p string) int64 {
	ok, st, err := conn.Exists(p)
	if err != nil || !ok {
		return 0
	}
	return st.EphemeralOwner
}

// Cut off past its session timeout, the watcher loses its session, its
// watches and its registration; writes go on meanwhile. Back, it must see
// every one of them and register again.
func TestWatcherSessionExpiredDuringPartition(t *testing.T) {
	modes(t, testWatcherSessionExpiredDuringPartition)
}

func testWatcherSessionExpiredDuringPartition(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.Start(t)
	p := zktest.NewProxy(t, e.Server(0))
	conn, s := appliedStore(t, e.Servers(), "canary.yaml")
	ctx := context.Background()
	w := watch(t, []string{p.Addr()}, s.Root(), with(mode, func(w *Watcher) { shortSession(w); registration("rs-1")(w) }))
	w.wait(t, seen, "first sync", synced(3))
	reg := s.Root() + "/routeservers/rs-1"
	testutil.Eventually(t, seen, "registration", func() bool { return ownerOf(conn, reg) != 0 })
	if got := get(t, conn, reg); !strings.Contains(got, `"url":"http://127.0.0.1:9280"`) || !strings.Contains(got, `"started_at":"`) {
		t.Errorf("registration: %s", got)
	}
	firstOwner := ownerOf(conn, reg)

	p.Block()
	w.wait(t, seen, "stale when cut off", func(st State) bool { return st.Stale && len(st.Deployments) == 3 })
	l := layout{root: s.Root()}
	if _, err := s.SetServing(ctx, canaryID, map[string]int{"blue": 0, "green": 100, "red": 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetZone(ctx, "zone-c", routes.ZoneUp); err != nil {
		t.Fatal(err)
	}
	// The session expires on the server: its ephemeral znode goes.
	testutil.Eventually(t, 5*time.Second, "session expiry", func() bool { return ownerOf(conn, reg) == 0 })
	if err := conn.Delete(l.instance(canaryID, "i-0006"), -1); err != nil {
		t.Fatal(err)
	}
	setJSON(t, conn, l.instance(canaryID, "i-0001"), InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:49201", Zone: "zone-a", Generation: "blue"}})
	if _, err := s.Apply(ctx, parseString(t, twoDeps), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.get(); !st.Stale || st.Deployments[canaryID].Serving["green"] != 10 {
		t.Fatalf("changed while cut off: stale=%v", st.Stale)
	}

	p.Unblock()
	st := w.wait(t, seen, "every change after the partition", func(st State) bool {
		in := instanceOf(st, canaryID, "i-0001")
		return !st.Stale && len(st.Deployments) == 5 && in != nil && in.Addr == "127.0.0.1:49201" &&
			instanceOf(st, canaryID, "i-0006") == nil && st.Zones["zone-c"] == routes.ZoneUp &&
			st.Deployments[canaryID].Serving["green"] == 100
	})
	matchesStore(t, s, st)
	testutil.Eventually(t, seen, "registration recreated", func() bool {
		o := ownerOf(conn, reg)
		return o != 0 && o != firstOwner
	})

	// The new watches work.
	setJSON(t, conn, l.instance(canaryID, "i-0002"), InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:19202", Zone: "zone-b", Generation: "blue", Maintenance: true}})
	w.wait(t, seen, "edit after the new session", func(st State) bool {
		in := instanceOf(st, canaryID, "i-0002")
		return in != nil && in.Maintenance
	})
	if _, err := conn.Create(l.instance(canaryID, "i-0009"), encode(InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:1", Zone: "z", Generation: "blue"}}), 0, acl); err != nil {
		t.Fatal(err)
	}
	w.wait(t, seen, "new instance after the new session", func(st State) bool { return instanceOf(st, canaryID, "i-0009") != nil })
	// The registration's watch is armed again too.
	if err := conn.Delete(reg, -1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, seen, "registration recreated after a delete", func() bool { return ownerOf(conn, reg) != 0 })
}

// A session closed on the server while connected (zktest.ExpireSession):
// the watcher rebuilds at once and loses no write made right after.
func TestWatcherSessionExpiredWhileConnected(t *testing.T) {
	modes(t, testWatcherSessionExpiredWhileConnected)
}

func testWatcherSessionExpiredWhileConnected(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.Start(t)
	conn, s := appliedStore(t, e.Servers(), "design-example.yaml")
	ctx := context.Background()
	w := watch(t, e.Servers(), s.Root(), with(mode, registration("rs-2")))
	w.wait(t, seen, "first sync", synced(1))
	reg := s.Root() + "/routeservers/rs-2"
	testutil.Eventually(t, seen, "registration", func() bool { return ownerOf(conn, reg) != 0 })
	wc := w.watcherConn()
	old := wc.SessionID()

	e.ExpireSession(wc)
	for i := 1; i <= 5; i++ {
		if _, err := s.SetServing(ctx, "7f3a9c2e51d04b8e", map[string]int{"blue": i}); err != nil {
			t.Fatal(err)
		}
	}
	st := w.wait(t, seen, "writes after the expiry", func(st State) bool {
		return !st.Stale && st.Deployments["7f3a9c2e51d04b8e"].Serving["blue"] == 5
	})
	matchesStore(t, s, st)
	if wc.SessionID() == old {
		t.Error("same session after ExpireSession")
	}
	testutil.Eventually(t, seen, "registration recreated", func() bool { return ownerOf(conn, reg) == wc.SessionID() })
}

// Two of three servers gone: no quorum, the watcher keeps its data marked
// stale; once they are back, changes arrive.
func TestWatcherQuorumLoss(t *testing.T) { modes(t, testWatcherQuorumLoss) }

func testWatcherQuorumLoss(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	_, s := appliedStore(t, e.Servers(), "canary.yaml")
	ctx := context.Background()
	w := watch(t, e.Servers(), s.Root(), with(mode, func(w *Watcher) { w.SessionTimeout = 2 * time.Second }))
	good := w.wait(t, seen, "first sync", synced(3))

	e.Kill(1)
	e.Kill(2)
	st := w.wait(t, 5*time.Second, "stale without quorum", func(st State) bool { return st.Stale })
	time.Sleep(1500 * time.Millisecond) // a while without quorum
	st, _ = w.get()
	if !st.Stale || len(st.Deployments) != 3 || st.Version != good.Version {
		t.Errorf("without quorum: stale=%v deployments=%d version=0x%x; want stale, 3, 0x%x", st.Stale, len(st.Deployments), st.Version, good.Version)
	}

	e.Start(1)
	e.Start(2)
	for i := 0; i < 3; i++ {
		e.WaitServing(i)
	}
	testutil.EventuallyErr(t, 10*time.Second, "a write after quorum is back", func() error {
		_, err := s.SetZone(ctx, "zone-c", routes.ZoneUp)
		return err
	})
	st = w.wait(t, seen, "change after quorum is back", func(st State) bool {
		return !st.Stale && st.Zones["zone-c"] == routes.ZoneUp
	})
	matchesStore(t, s, st)
}

// A short partition keeps the session: the client sets its watches again
// (SetWatches), the watcher reads the layout again without registering
// them twice, and both the writes made meanwhile and later ones arrive.
func TestWatcherReconnectKeepsSession(t *testing.T) { modes(t, testWatcherReconnectKeepsSession) }

func testWatcherReconnectKeepsSession(t *testing.T, mode func(*Watcher)) {
	t.Parallel()
	e := zktest.Start(t)
	p := zktest.NewProxy(t, e.Server(0))
	conn, s := appliedStore(t, e.Servers(), "canary.yaml")
	ctx := context.Background()
	w := watch(t, []string{p.Addr()}, s.Root(), with(mode, func(w *Watcher) { w.SessionTimeout = 4 * time.Second }))
	w.wait(t, seen, "first sync", synced(3))
	session := w.watcherConn().SessionID()
	l := layout{root: s.Root()}

	p.Block()
	w.wait(t, 3*time.Second, "stale when cut off", func(st State) bool { return st.Stale })
	setJSON(t, conn, l.instance(canaryID, "i-0003"), InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:59203", Zone: "zone-a", Generation: "blue"}})
	if _, err := s.SetZone(ctx, "zone-c", routes.ZoneUp); err != nil {
		t.Fatal(err)
	}
	p.Unblock()
	st := w.wait(t, seen, "changes made while cut off", func(st State) bool {
		in := instanceOf(st, canaryID, "i-0003")
		return !st.Stale && in != nil && in.Addr == "127.0.0.1:59203" && st.Zones["zone-c"] == routes.ZoneUp
	})
	matchesStore(t, s, st)
	if got := w.watcherConn().SessionID(); got != session {
		t.Fatalf("session changed (0x%x, was 0x%x): the partition was meant to be shorter than the session timeout", got, session)
	}
	// Watches armed before the partition still fire.
	for i, in := range []string{"i-0001", "i-0003", "i-0004"} {
		addr := fmt.Sprintf("127.0.0.1:%d", 60000+i)
		gen := "blue"
		if in == "i-0004" {
			gen = "green"
		}
		setJSON(t, conn, l.instance(canaryID, in), InstanceData{Instance: routes.Instance{Addr: addr, Zone: "zone-a", Generation: gen}})
		w.wait(t, seen, "edit of "+in+" after the partition", func(st State) bool {
			got := instanceOf(st, canaryID, in)
			return got != nil && got.Addr == addr
		})
	}
	if _, err := s.SetZone(ctx, "zone-c", routes.ZoneDown); err != nil {
		t.Fatal(err)
	}
	w.wait(t, seen, "zone edit after the partition", func(st State) bool { return st.Zones["zone-c"] == routes.ZoneDown })
}
