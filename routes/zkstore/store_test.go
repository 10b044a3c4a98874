package zkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/routesfile"
)

var rootSeq atomic.Int64

// newRoot returns a root of its own for a test.
func newRoot(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-", ".", "-").Replace(t.Name())
	return fmt.Sprintf("/t%d-%s", rootSeq.Add(1), name)
}

// testStore starts a server and returns a Store on it at a new root.
func testStore(t *testing.T) (*Store, *zk.Conn) {
	t.Helper()
	e := zktest.Start(t)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	s, err := New(conn, newRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, conn
}

func parse(t *testing.T, name string) *routes.Table {
	t.Helper()
	tab, err := routesfile.ParseFile(filepath.Join("..", "routesfile", "testdata", "good", name))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func parseString(t *testing.T, yaml string) *routes.Table {
	t.Helper()
	tab, err := routesfile.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// sameTable fails the test when the snapshot does not hold what the table
// says (instances compare in ID order: the store does not keep the file's
// order).
func sameTable(t *testing.T, snap *Snapshot, want *routes.Table) {
	t.Helper()
	if snap.Domain != want.Domain {
		t.Errorf("domain: got %q; want %q", snap.Domain, want.Domain)
	}
	if !maps.Equal(snap.Zones, want.Zones) {
		t.Errorf("zones: got %v; want %v", snap.Zones, want.Zones)
	}
	if len(snap.Deployments) != len(want.Deployments()) {
		t.Errorf("deployments: got %d; want %d", len(snap.Deployments), len(want.Deployments()))
	}
	for _, wd := range want.Deployments() {
		gd := snap.Deployments[wd.ID]
		if gd == nil {
			t.Errorf("deployment %s: missing", wd.ID)
			continue
		}
		if got, want := describe(gd), describe(&wd.DeploymentSpec); got != want {
			t.Errorf("deployment %s:\ngot  %s\nwant %s", wd.ID, got, want)
		}
	}
}

// describe is a deployment in one line, its whole spec as JSON with the
// instances sorted by ID.
func describe(d *routes.DeploymentSpec) string {
	c := *d
	c.Instances = slices.Clone(d.Instances)
	slices.SortFunc(c.Instances, func(a, b *routes.Instance) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func get(t *testing.T, conn *zk.Conn, p string) string {
	t.Helper()
	b, _, err := conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	return string(b)
}

func TestApplyReadRoundTrip(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("..", "routesfile", "testdata", "good", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no routes/routesfile/testdata/good/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, _ := testStore(t)
			tab := parse(t, filepath.Base(f))
			res, err := s.Apply(context.Background(), tab, ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != tab.Len() || res.Updated+res.Unchanged+res.Deleted != 0 {
				t.Errorf("result: got %+v; want %d created", res, tab.Len())
			}
			snap, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sameTable(t, snap, tab)
			if len(snap.Invalid) != 0 {
				t.Errorf("invalid: %v", snap.Invalid)
			}
			if snap.Version != res.Zxid {
				t.Errorf("version: got 0x%x; want the last write's zxid 0x%x", snap.Version, res.Zxid)
			}
			built, err := snap.Table()
			if err != nil {
				t.Fatalf("Table: %v", err)
			}
			if built.Version != uint64(snap.Version) || built.Len() != tab.Len() {
				t.Errorf("table: version %d, %d deployments", built.Version, built.Len())
			}
		})
	}
}

// The JSON of each znode is the one of docs/zookeeper.md.
func TestZnodeJSON(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	if _, err := s.Apply(context.Background(), parse(t, "design-example.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	r := s.Root()
	for _, c := range []struct{ path, want string }{
		{r + "/config", `{"domain":"example.test"}`},
		{r + "/zones/zone-b", `{"state":"down"}`},
		{r + "/zones/zone-a", `{"state":"up"}`},
		{r + "/deployments/7f3a9c2e51d04b8e", `{"kind":"es","aliases":["prod-search"],"serving":{"blue":100}}`},
		{r + "/deployments/7f3a9c2e51d04b8e/instances/i-0001", `{"addr":"127.0.0.1:19201","zone":"zone-a","generation":"blue","maintenance":false}`},
		{r + "/deployments/7f3a9c2e51d04b8e/instances/i-0002", `{"addr":"127.0.0.1:19202","zone":"zone-b","generation":"blue","maintenance":true}`},
	} {
		if got := get(t, conn, c.path); got != c.want {
			t.Errorf("%s: got %s; want %s", c.path, got, c.want)
		}
	}
	if ok, _, _ := conn.Exists(r + "/routeservers"); !ok {
		t.Error("routeservers container not created")
	}
}

func TestApplyIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	tab := parse(t, "canary.yaml")
	if _, err := s.Apply(ctx, tab, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, tab, ApplyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ApplyResult{Unchanged: tab.Len()}
	if res.Created != 0 || res.Updated != 0 || res.Deleted != 0 || res.Unchanged != want.Unchanged || len(res.Changes) != 0 || res.Zxid != 0 {
		t.Errorf("second apply: got %+v; want %+v", res, want)
	}
	after, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version {
		t.Errorf("version: got 0x%x after the second apply; want 0x%x (no write)", after.Version, before.Version)
	}
}

const twoDeps = `domain: example.test
zones: {zone-a: up}
deployments:
  - id: aaaaaaaa
    kind: es
    aliases: [one]
    serving: {blue: 100}
    instances:
      - {id: i-1, addr: 127.0.0.1:1001, zone: zone-a, generation: blue}
      - {id: i-2, addr: 127.0.0.1:1002, zone: zone-a, generation: blue}
  - id: bbbbbbbb
    kind: kb
    serving: {blue: 1}
    instances:
      - {id: k-1, addr: 127.0.0.1:2001, zone: zone-a, generation: blue}
`

func TestApplyChangesAndPrune(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parseString(t, twoDeps), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	// aaaaaaaa: serving moves to green, i-1 changes address, i-2 goes,
	// i-3 comes; bbbbbbbb is not in the file; zone-b is new.
	next := parseString(t, `domain: example.test
zones: {zone-a: up, zone-b: down}
deployments:
  - id: aaaaaaaa
    kind: es
    aliases: [one]
    serving: {green: 100}
    instances:
      - {id: i-1, addr: 127.0.0.1:1101, zone: zone-a, generation: green}
      - {id: i-3, addr: 127.0.0.1:1003, zone: zone-a, generation: green}
`)
	res, err := s.Apply(ctx, next, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.String())
	}
	want := []string{
		"created zone zone-b (down)",
		"updated deployment aaaaaaaa (serving, instances +1 ~1 -1)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\ngot  %q\nwant %q", got, want)
	}
	if res.Updated != 1 || res.Deleted != 0 || res.Created != 0 {
		t.Errorf("counts: %+v", res)
	}
	if d := get(t, conn, s.Root()+"/deployments/aaaaaaaa"); d != `{"kind":"es","aliases":["one"],"serving":{"green":100},"previous_serving":{"blue":100}}` {
		t.Errorf("deployment znode: %s", d)
	}
	snap, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Deployments["bbbbbbbb"]; !ok {
		t.Error("bbbbbbbb deleted without --prune")
	}
	if got := describe(snap.Deployments["aaaaaaaa"]); got != describe(&next.Deployments()[0].DeploymentSpec) {
		t.Errorf("aaaaaaaa: got %s", got)
	}

	res, err = s.Apply(ctx, next, ApplyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Unchanged != 1 || len(res.Changes) != 1 || res.Changes[0].String() != "deleted deployment bbbbbbbb" {
		t.Errorf("prune: got %+v", res)
	}
	if ok, _, _ := conn.Exists(s.Root() + "/deployments/bbbbbbbb"); ok {
		t.Error("bbbbbbbb still there after --prune")
	}
	if res.Zxid == 0 {
		t.Error("prune: no zxid")
	}
}

// A traffic filter is stored in the deployment znode; a change of it alone
// is an update named "allow", and removing it leaves no allow key.
func TestApplyAllow(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	withAllow := func(allow string) *routes.Table {
		return parseString(t, `domain: example.test
deployments:
  - id: aaaaaaaa
    kind: es
    `+allow+`
    serving: {blue: 100}
    instances:
      - {id: i-1, addr: 127.0.0.1:1001, zone: zone-a, generation: blue}
`)
	}
	if _, err := s.Apply(ctx, withAllow("allow: [10.0.0.0/8, 192.0.2.7]"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	dp := s.Root() + "/deployments/aaaaaaaa"
	if got := get(t, conn, dp); got != `{"kind":"es","allow":["10.0.0.0/8","192.0.2.7"],"serving":{"blue":100}}` {
		t.Errorf("deployment znode: %s", got)
	}
	res, err := s.Apply(ctx, withAllow("allow: [10.0.0.0/8]"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].String() != "updated deployment aaaaaaaa (allow)" {
		t.Errorf("changes: %+v", res.Changes)
	}
	snap, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := snap.Table()
	if err != nil {
		t.Fatal(err)
	}
	d := tb.Lookup([]byte("aaaaaaaa"))
	if !d.Allows(netip.MustParseAddr("10.9.9.9")) || d.Allows(netip.MustParseAddr("192.0.2.7")) {
		t.Errorf("table from the store: AllowNets %v", d.AllowNets)
	}
	if _, err := s.Apply(ctx, withAllow(""), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, conn, dp); got != `{"kind":"es","serving":{"blue":100}}` {
		t.Errorf("deployment znode without a filter: %s", got)
	}

	// A bad filter written to the store by hand is rejected with the
	// deployment, whose znode it names.
	if _, err := conn.Set(dp, []byte(`{"kind":"es","allow":["10.0.0.1/8"],"serving":{"blue":100}}`), -1); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg := snap.Invalid["aaaaaaaa"]; !strings.Contains(fmt.Sprint(msg), dp) || !strings.Contains(fmt.Sprint(msg), "host bits set") {
		t.Errorf("invalid: %v", snap.Invalid)
	}
}

// A transaction that fails on one operation applies none of the others.
func TestCommitIsAtomic(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	tab := parseString(t, twoDeps)
	if _, err := s.Apply(ctx, tab, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Read(ctx)

	// A version conflict: another writer sets the deployment between our
	// read and our transaction.
	next := parseString(t, strings.ReplaceAll(twoDeps, "127.0.0.1:100", "127.0.0.1:300"))
	plan, err := s.planDeployment(&next.Deployments()[0].DeploymentSpec)
	if err != nil {
		t.Fatal(err)
	}
	dp := s.Root() + "/deployments/aaaaaaaa"
	if _, err := conn.Set(dp, []byte(get(t, conn, dp)), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.commit(plan); !errors.Is(err, ErrConflict) || !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("commit after a concurrent write: got %v; want ErrConflict wrapping zk.ErrBadVersion", err)
	}
	after, _ := s.Read(ctx)
	if got, want := describe(after.Deployments["aaaaaaaa"]), describe(before.Deployments["aaaaaaaa"]); got != want {
		t.Errorf("half-written after a failed transaction:\ngot  %s\nwant %s", got, want)
	}

	// A failing last operation: creating a deployment whose instance
	// another writer created meanwhile.
	third := parseString(t, twoDeps+`  - id: cccccccc
    kind: apm
    serving: {blue: 1}
    instances:
      - {id: a-1, addr: 127.0.0.1:3001, zone: zone-a, generation: blue}
      - {id: a-2, addr: 127.0.0.1:3002, zone: zone-a, generation: blue}
`)
	plan, err = s.planDeployment(&third.Deployments()[2].DeploymentSpec)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plan.ops[len(plan.ops)-1].(*zk.CreateRequest); !ok {
		t.Fatalf("last op: %T", plan.ops[len(plan.ops)-1])
	}
	plan.ops[len(plan.ops)-1].(*zk.CreateRequest).Path = s.Root() + "/zones/zone-a" // exists
	_, err = s.commit(plan)
	if !errors.Is(err, ErrConflict) || !errors.Is(err, zk.ErrNodeExists) || !strings.Contains(err.Error(), "/zones/zone-a") {
		t.Fatalf("commit: got %v; want ErrConflict naming /zones/zone-a", err)
	}
	if ok, _, _ := conn.Exists(s.Root() + "/deployments/cccccccc"); ok {
		t.Error("deployment created by a failed transaction")
	}

	// Apply plans again after a conflict and gets there.
	if _, err := s.Apply(ctx, next, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestSetServingAndZone(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	id := "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"
	zxid, err := s.SetServing(ctx, id, map[string]int{"blue": 0, "green": 100, "red": 0})
	if err != nil {
		t.Fatal(err)
	}
	_, dd, err := s.ReadSpec(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(dd.PreviousServing, map[string]int{"blue": 90, "green": 10, "red": 0}) || dd.Serving["green"] != 100 {
		t.Errorf("after SetServing: %+v", dd)
	}
	_, st, _ := conn.Exists(s.Root() + "/deployments/" + id)
	if st.Mzxid != zxid {
		t.Errorf("zxid: got 0x%x; want the znode's mzxid 0x%x", zxid, st.Mzxid)
	}
	// The same serving again: no write.
	again, err := s.SetServing(ctx, id, map[string]int{"blue": 0, "green": 100, "red": 0})
	if err != nil || again != zxid {
		t.Errorf("same serving: got 0x%x, %v; want 0x%x, nil", again, err, zxid)
	}
	// An instance's generation must stay in serving.
	_, err = s.SetServing(ctx, id, map[string]int{"green": 100})
	var re *routes.Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `generation "blue" is not in serving`) {
		t.Errorf("serving without blue: got %v; want a routes.Error", err)
	}
	if _, err := s.SetServing(ctx, "0123456789", map[string]int{"a": 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown deployment: got %v; want ErrNotFound", err)
	}

	if _, err := s.SetZone(ctx, "zone-q", routes.ZoneDown); err != nil {
		t.Fatal(err)
	}
	if got := get(t, conn, s.Root()+"/zones/zone-q"); got != `{"state":"down"}` {
		t.Errorf("zone-q: %s", got)
	}
	if _, err := s.SetZone(ctx, "Zone_Q", routes.ZoneDown); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad zone name: got %v; want ErrInvalid", err)
	}
	other, _ := New(conn, s.Root()+"-none")
	if _, err := other.SetZone(ctx, "zone-a", routes.ZoneDown); !errors.Is(err, ErrNoRoot) {
		t.Errorf("no root: got %v; want ErrNoRoot", err)
	}
	if _, err := other.Read(ctx); !errors.Is(err, ErrNoRoot) {
		t.Errorf("read without root: got %v; want ErrNoRoot", err)
	}
}

// Snapshot.Versions: a change to one part raises its version and the
// whole's, and no other part's.
func TestSnapshotVersions(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, b := "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57", "c41d8e2b7a9f4063b5e1d7c2a8f93b16"
	want := []string{"0a1b2c3d", a, b, "config", "zones"}
	if got := slices.Sorted(maps.Keys(before.Versions)); !slices.Equal(got, want) {
		t.Fatalf("Versions keys %q; want %q", got, want)
	}
	for k, v := range before.Versions {
		if v <= 0 || v > before.Version {
			t.Errorf("Versions[%s] = 0x%x; want in (0, 0x%x]", k, v, before.Version)
		}
	}
	zxid, err := s.SetServing(ctx, a, map[string]int{"blue": 0, "green": 100, "red": 0})
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Versions[a] != zxid || after.Version != zxid {
		t.Errorf("after a write to %s: its version 0x%x, the whole's 0x%x; want both 0x%x", a, after.Versions[a], after.Version, zxid)
	}
	for _, k := range []string{b, "0a1b2c3d", "config", "zones"} {
		if after.Versions[k] != before.Versions[k] {
			t.Errorf("Versions[%s] moved from 0x%x to 0x%x on a write to %s", k, before.Versions[k], after.Versions[k], a)
		}
	}
	zz, err := s.SetZone(ctx, "zone-b", routes.ZoneDown)
	if err != nil {
		t.Fatal(err)
	}
	if after, err = s.Read(ctx); err != nil || after.Versions["zones"] != zz || after.Versions[a] != zxid {
		t.Errorf("after a zone write: zones 0x%x, %s 0x%x, %v; want 0x%x, 0x%x", after.Versions["zones"], a, after.Versions[a], err, zz, zxid)
	}
}

func TestCheckRoot(t *testing.T) {
	for _, c := range []struct {
		root string
		ok   bool
	}{{"/switchyard", true}, {"/a/b", true}, {"switchyard", false}, {"/", false}, {"/a/", false}, {"/a//b", false}} {
		if err := CheckRoot(c.root); (err == nil) != c.ok {
			t.Errorf("CheckRoot(%q): got %v; want ok=%v", c.root, err, c.ok)
		}
	}
}

func TestSetMaintenance(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	id := "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"
	dp := s.Root() + "/deployments/" + id
	_, before, _ := conn.Exists(dp)
	zxid, err := s.SetMaintenance(ctx, id, "i-0002", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, conn, dp+"/instances/i-0002"); !strings.Contains(got, `"maintenance":true`) {
		t.Errorf("i-0002: %s", got)
	}
	_, after, _ := conn.Exists(dp)
	if after.Version != before.Version+1 || after.Mzxid != zxid {
		t.Errorf("deployment znode: version %d -> %d, mzxid 0x%x; want +1 and the write's zxid 0x%x", before.Version, after.Version, after.Mzxid, zxid)
	}
	d, _, err := s.ReadSpec(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.Instances {
		if in.Maintenance != (in.ID == "i-0002") {
			t.Errorf("instance %s: maintenance %v", in.ID, in.Maintenance)
		}
	}
	// Same value again: no write.
	if again, err := s.SetMaintenance(ctx, id, "i-0002", true); err != nil || again != zxid {
		t.Errorf("same value: got 0x%x, %v; want 0x%x", again, err, zxid)
	}
	if z, err := s.SetMaintenance(ctx, id, "i-0002", false); err != nil || z <= zxid {
		t.Errorf("off: got 0x%x, %v", z, err)
	}
	if _, err := s.SetMaintenance(ctx, id, "i-9999", true); !errors.Is(err, ErrNoInstance) {
		t.Errorf("unknown instance: got %v; want ErrNoInstance", err)
	}
	if _, err := s.SetMaintenance(ctx, "0123456789", "i-0001", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown deployment: got %v; want ErrNotFound", err)
	}
}

// PutDeployment writes one deployment as Apply would, refuses an invalid
// one, and writes nothing for what is stored already; DeleteDeployment
// removes it with its instances.
func TestPutAndDeleteDeployment(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	d := &routes.DeploymentSpec{ID: "aaaa0001", Kind: "es", Serving: map[string]int{"r1": 100},
		Instances: []*routes.Instance{{ID: "aaaa0001-r1-a", Addr: "127.0.0.1:20001", Zone: "zone-a", Generation: "r1"}}}
	z, err := s.PutDeployment(ctx, d)
	if err != nil || z == 0 {
		t.Fatalf("PutDeployment: zxid %d, %v", z, err)
	}
	got, _, err := s.ReadSpec(ctx, "aaaa0001")
	if err != nil || len(got.Instances) != 1 || got.Instances[0].Addr != "127.0.0.1:20001" || got.Serving["r1"] != 100 {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if z, err := s.PutDeployment(ctx, d); err != nil || z != 0 {
		t.Errorf("PutDeployment of what is stored: zxid %d, %v; want 0, nil", z, err)
	}
	// A second generation beside the first, at weight 0.
	d.Serving["r2"] = 0
	d.Instances = append(d.Instances, &routes.Instance{ID: "aaaa0001-r2-a", Addr: "127.0.0.1:20002", Zone: "zone-a", Generation: "r2"})
	if _, err := s.PutDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.ReadSpec(ctx, "aaaa0001"); len(got.Instances) != 2 {
		t.Errorf("instances after adding r2: %d", len(got.Instances))
	}
	bad := &routes.DeploymentSpec{ID: "aaaa0002", Kind: "es", Serving: map[string]int{"nope": 100}}
	if _, err := s.PutDeployment(ctx, bad); err == nil {
		t.Error("an invalid deployment was written")
	}
	if _, _, err := s.ReadSpec(ctx, "aaaa0002"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the refused write: %v", err)
	}
	if z, err := s.DeleteDeployment(ctx, "aaaa0001"); err != nil || z == 0 {
		t.Fatalf("DeleteDeployment: %d, %v", z, err)
	}
	if _, _, err := s.ReadSpec(ctx, "aaaa0001"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if z, err := s.DeleteDeployment(ctx, "aaaa0001"); err != nil || z != 0 {
		t.Errorf("second delete: %d, %v", z, err)
	}
}
