package zkstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// aliasEntries returns the alias index: key -> deployment.
func aliasEntries(t *testing.T, s *Store, conn *zk.Conn) map[string]string {
	t.Helper()
	keys, _, err := conn.Children(s.l.aliases())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var a AliasData
		if err := decode(s.l.alias(k), []byte(get(t, conn, s.l.alias(k))), &a); err != nil {
			t.Fatal(err)
		}
		out[k] = a.Deployment
	}
	return out
}

func TestAliasIndex(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	res, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kb, es := "c41d8e2b7a9f4063b5e1d7c2a8f93b16", "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"
	want := map[string]string{"prod-search.es": es, "prod-dash.kb": kb, "dash.kb": kb}
	if got := aliasEntries(t, s, conn); !maps.Equal(got, want) {
		t.Errorf("index after apply: %v; want %v", got, want)
	}
	if res.Indexed != 0 {
		t.Errorf("Indexed %d after a first apply", res.Indexed)
	}

	for key, id := range map[string]string{"prod-dash.kb": kb, "DASH.KB": kb, "prod-search.es": es, es: es, "0a1b2c3d": "0a1b2c3d"} {
		r, err := s.Resolve(ctx, key)
		if err != nil || r.ID != id || r.Scanned != 0 {
			t.Errorf("Resolve(%q) = %+v, %v; want %s from the index", key, r, err, id)
		}
	}
	for _, key := range []string{"nope.kb", "0123456789abcdef", "prod-search.kb"} {
		if r, err := s.Resolve(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %+v, %v; want ErrNotFound", key, r, err)
		}
	}

	// An alias renamed: the old entry goes, the new one comes, in the
	// deployment's transaction.
	d := parse(t, "canary.yaml").Deployments()
	var kbSpec *routes.DeploymentSpec
	for _, dd := range d {
		if dd.ID == kb {
			kbSpec = &dd.DeploymentSpec
		}
	}
	kbSpec.Aliases = []string{"board"}
	if _, err := s.PutDeployment(ctx, kbSpec); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"prod-search.es": es, "board.kb": kb}
	if got := aliasEntries(t, s, conn); !maps.Equal(got, want) {
		t.Errorf("index after renaming kb's aliases: %v; want %v", got, want)
	}

	// A second deployment with a key already held: the entry keeps the
	// first, as route servers do; reading the second says it is refused.
	other := &routes.DeploymentSpec{ID: "bbbb0001", Kind: "kb", Aliases: []string{"board"}, Serving: map[string]int{"g": 100},
		Instances: []*routes.Instance{{ID: "i1", Addr: "127.0.0.1:20001", Zone: "zone-a", Generation: "g"}}}
	if _, err := s.PutDeployment(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got := aliasEntries(t, s, conn); got["board.kb"] != kb {
		t.Errorf("board.kb -> %s; want %s (claimed first)", got["board.kb"], kb)
	}
	snap, err := s.ReadDeployment(ctx, "bbbb0001")
	if err != nil || snap.Deployments["bbbb0001"] != nil || snap.Invalid["bbbb0001"] == "" {
		t.Errorf("ReadDeployment of the second holder: %+v, %v; want it invalid", snap, err)
	}
	full, err := s.Read(ctx)
	if err != nil || full.Invalid["bbbb0001"] == "" {
		t.Errorf("Read: invalid %v, %v; want bbbb0001 refused", full.Invalid, err)
	}

	// Deleting the holder removes its entries; the key is then found by a
	// scan (the second deployment has it).
	if _, err := s.DeleteDeployment(ctx, kb); err != nil {
		t.Fatal(err)
	}
	if got := aliasEntries(t, s, conn); got["board.kb"] != "" {
		t.Errorf("board.kb -> %q after its holder was deleted", got["board.kb"])
	}
	if r, err := s.Resolve(ctx, "board.kb"); err != nil || r.ID != "bbbb0001" || r.Scanned == 0 {
		t.Errorf("Resolve(board.kb) after the delete = %+v, %v; want bbbb0001 by a scan", r, err)
	}
	// Writing it again (here: the same spec) fills the missing entry.
	if _, err := s.PutDeployment(ctx, other); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Resolve(ctx, "board.kb"); err != nil || r.ID != "bbbb0001" || r.Scanned != 0 {
		t.Errorf("Resolve(board.kb) after the rewrite = %+v, %v; want bbbb0001 from the index", r, err)
	}
}

// A store written before the index: keys resolve by a scan until the
// next apply writes the missing entries (and nothing else).
func TestAliasIndexMissing(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, _ := conn.Children(s.l.aliases())
	for _, k := range keys {
		if err := conn.Delete(s.l.alias(k), -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Delete(s.l.aliases(), -1); err != nil {
		t.Fatal(err)
	}
	r, err := s.Resolve(ctx, "prod-search.es")
	if err != nil || r.ID != "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57" || r.Scanned != 3 {
		t.Errorf("Resolve without the index = %+v, %v; want a scan of 3", r, err)
	}
	res, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{})
	if err != nil || len(res.Changes) != 0 || res.Indexed != 2 || res.Unchanged != 3 {
		t.Errorf("apply over the old store: %+v, %v; want no change, 2 deployments indexed", res, err)
	}
	after, err := s.Read(ctx)
	if err != nil || after.Version != before.Version {
		t.Errorf("the index write changed the table's version: %x -> %x (%v)", before.Version, after.Version, err)
	}
	if r, err := s.Resolve(ctx, "prod-search.es"); err != nil || r.Scanned != 0 {
		t.Errorf("Resolve after the apply = %+v, %v; want the index", r, err)
	}
	if res, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil || res.Indexed != 0 || len(res.Changes) != 0 {
		t.Errorf("third apply: %+v, %v; want no write", res, err)
	}
}

// Scan hands every deployment over in ID order and ends with Read's
// version and Invalid; ReadDeployment's version is the deployment's,
// zones' and config's.
func TestScanAndReadDeployment(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	var deps []*routes.DeploymentSpec
	for i := 0; i < 300; i++ {
		deps = append(deps, &routes.DeploymentSpec{ID: fmt.Sprintf("%08x", 300-i), Kind: "es", Serving: map[string]int{"g": 100},
			Instances: []*routes.Instance{{ID: "i1", Addr: "127.0.0.1:20001", Zone: "zone-a", Generation: "g"}}})
	}
	tbl, err := routes.NewTable("example.test", map[string]routes.ZoneState{"zone-b": routes.ZoneDown}, deps)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	if _, err := s.Apply(ctx, tbl, ApplyOptions{InFlight: 7, OnChange: func(c Change) { changes = append(changes, c.Name) }}); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(changes[2:]) || len(changes) != 302 {
		t.Errorf("changes said out of order or missing: %d, %v...", len(changes), changes[:5])
	}
	if _, err := conn.Set(s.l.deployment("00000005"), []byte("{"), -1); err != nil {
		t.Fatal(err)
	}
	full, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	res, err := s.Scan(ctx, ScanOptions{InFlight: 5,
		Head: func(h *Snapshot, ids []string) error {
			if h.Domain != "example.test" || h.Zones["zone-b"] != routes.ZoneDown || len(ids) != 300 {
				t.Errorf("head: %+v, %d ids", h, len(ids))
			}
			return nil
		},
		Deployment: func(id string, d *routes.DeploymentSpec, invalid string) error {
			seen = append(seen, id)
			if (d == nil) != (id == "00000005") || (invalid != "") != (id == "00000005") {
				t.Errorf("%s: %v, %q", id, d, invalid)
			}
			return nil
		}})
	if err != nil || res.Version != full.Version || res.Deployments != 300 || !maps.Equal(res.Invalid, full.Invalid) {
		t.Errorf("Scan: %+v, %v; want version %x, invalid %v", res, err, full.Version, full.Invalid)
	}
	if !slices.IsSorted(seen) || len(seen) != 300 {
		t.Errorf("Scan order: %d, sorted %v", len(seen), slices.IsSorted(seen))
	}
	one, err := s.ReadDeployment(ctx, "00000007")
	if err != nil || one.Deployments["00000007"] == nil || len(one.Deployments) != 1 ||
		one.Version != max(full.Versions["00000007"], full.Versions["zones"], full.Versions["config"]) || one.Zones["zone-b"] != routes.ZoneDown {
		t.Errorf("ReadDeployment: %+v, %v", one, err)
	}
	if _, err := s.ReadDeployment(ctx, "0000ffff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadDeployment of a missing one: %v", err)
	}
	if n, err := s.CountDeployments(ctx); err != nil || n != 300 {
		t.Errorf("CountDeployments: %d, %v", n, err)
	}
}
