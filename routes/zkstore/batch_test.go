package zkstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// bigTable is 300 deployments of one instance, each with an alias, and
// two of 600 instances side by side: their reads and their transactions
// do not fit in one request, nor two of them in one transaction.
func bigTable(t *testing.T, addr string) *routes.Table {
	t.Helper()
	var deps []*routes.DeploymentSpec
	for i := 0; i < 300; i++ {
		deps = append(deps, &routes.DeploymentSpec{ID: fmt.Sprintf("%08x", 300-i), Kind: "es", Aliases: []string{fmt.Sprintf("d%d", i)},
			Serving: map[string]int{"g": 100}, Instances: []*routes.Instance{{ID: "i1", Addr: addr, Zone: "zone-a", Generation: "g"}}})
	}
	for _, id := range []string{"0000ff01", "0000ff02"} {
		d := &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"g": 100}}
		for j := 0; j < 600; j++ {
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i%03d", j), Addr: addr, Zone: "zone-a", Generation: "g"})
		}
		deps = append(deps[:150], append([]*routes.DeploymentSpec{d}, deps[150:]...)...)
	}
	tbl, err := routes.NewTable("example.test", nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestApplyBatches(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	tbl := bigTable(t, "127.0.0.1:20001")
	var changes []string
	var done []int
	res, err := s.Apply(ctx, tbl, ApplyOptions{
		OnChange: func(c Change) { changes = append(changes, c.Name) },
		Progress: func(d, total int) { done = append(done, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range tbl.Deployments() {
		want = append(want, d.ID)
	}
	if res.Created != 302 || !slices.Equal(changes[1:], want) {
		t.Errorf("created %d; changes %d, in the file's order: %v", res.Created, len(changes), slices.Equal(changes[1:], want))
	}
	if !slices.IsSorted(done) || done[len(done)-1] != 302 {
		t.Errorf("progress: %v", done)
	}
	snap, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, snap, tbl)
	for i := 0; i < 300; i++ {
		if r, err := s.Resolve(ctx, fmt.Sprintf("d%d.es", i)); err != nil || r.Scanned != 0 || r.ID != fmt.Sprintf("%08x", 300-i) {
			t.Fatalf("alias d%d.es: %+v, %v", i, r, err)
		}
	}

	res, err = s.Apply(ctx, tbl, ApplyOptions{})
	if err != nil || len(res.Changes) != 0 || res.Unchanged != 302 {
		t.Errorf("again: %+v, %v; want 302 unchanged, no change", res, err)
	}

	// Every deployment changes: one instance's address each.
	next := bigTable(t, "127.0.0.1:20002")
	res, err = s.Apply(ctx, next, ApplyOptions{})
	if err != nil || res.Updated != 302 {
		t.Fatalf("update: %+v, %v", res, err)
	}
	snap, err = s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, snap, next)
}

// A transaction of several deployments that loses a race to another
// writer of one of them writes none; each is then applied on its own.
func TestCommitGroupConflict(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parseString(t, twoDeps), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	next := parseString(t, twoDeps+`  - id: cccccccc
    kind: apm
    serving: {blue: 1}
    instances:
      - {id: a-1, addr: 127.0.0.1:3001, zone: zone-a, generation: blue}
`)
	next.Deployments()[0].Serving = map[string]int{"blue": 50, "green": 50}
	var ds []*routes.DeploymentSpec
	for i := range next.Deployments() {
		ds = append(ds, &next.Deployments()[i].DeploymentSpec)
	}
	plans, err := s.planBatch(ds, &listing{})
	if err != nil {
		t.Fatal(err)
	}
	dp := s.Root() + "/deployments/aaaaaaaa"
	if _, err := conn.Set(dp, []byte(get(t, conn, dp)), -1); err != nil {
		t.Fatal(err)
	}
	var res ApplyResult
	if err := s.commitGroup(ds, plans, &res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.String())
	}
	want := []string{"updated deployment aaaaaaaa (serving)", "created deployment cccccccc (apm, 1 instances)"}
	if !slices.Equal(got, want) || res.Unchanged != 1 {
		t.Errorf("changes: got %q, %d unchanged; want %q, 1 unchanged", got, res.Unchanged, want)
	}
	snap, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, snap, next)
}

// Stream sees what Scan sees, in the same order.
func TestStreamIsScan(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, bigTable(t, "127.0.0.1:20001"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	// One that does not decode, one that takes another's alias key.
	if _, err := conn.Set(s.l.deployment("00000005"), []byte("{"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Set(s.l.deployment("00000007"), []byte(`{"kind":"es","aliases":["d3"],"serving":{"g":100}}`), -1); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		ids     []string
		invalid []string
		insts   int
	}
	run := func(scan func(context.Context, ScanOptions) (ScanResult, error)) (seen, ScanResult) {
		var sn seen
		res, err := scan(ctx, ScanOptions{InFlight: 3, Deployment: func(id string, d *routes.DeploymentSpec, invalid string) error {
			sn.ids = append(sn.ids, id)
			if d == nil {
				sn.invalid = append(sn.invalid, invalid)
			} else {
				sn.insts += len(d.Instances)
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return sn, res
	}
	gotSeen, got := run(s.Stream)
	wantSeen, want := run(s.Scan)
	if got.Version != want.Version || got.Deployments != want.Deployments || !maps.Equal(got.Invalid, want.Invalid) {
		t.Errorf("Stream: %+v; Scan: %+v", got, want)
	}
	if !slices.Equal(gotSeen.ids, wantSeen.ids) || !slices.Equal(gotSeen.invalid, wantSeen.invalid) || gotSeen.insts != wantSeen.insts {
		t.Errorf("Stream saw %d deployments, %q, %d instances; Scan %d, %q, %d", len(gotSeen.ids), gotSeen.invalid, gotSeen.insts,
			len(wantSeen.ids), wantSeen.invalid, wantSeen.insts)
	}
	if len(got.Invalid) != 2 {
		t.Errorf("invalid: %v; want 00000005 and 00000007", got.Invalid)
	}
}
