package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

func dep(id string, gens map[string]int, addrs ...string) *routes.DeploymentSpec {
	d := &routes.DeploymentSpec{ID: id, Kind: "es", Serving: gens}
	for i, a := range addrs {
		d.Instances = append(d.Instances, &routes.Instance{ID: "i-" + string(rune('a'+i)), Addr: a, Zone: "zone-a", Generation: "blue"})
	}
	return d
}

func decode(t *testing.T, b []byte) *Message {
	t.Helper()
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestFullThenDeltas(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	b := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:2")
	s1 := NewSnapshot(nil, 10, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b})

	st, err := Apply(nil, decode(t, s1.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Hash != s1.Hash || len(depsOf(st)) != 2 {
		t.Fatalf("full: hash %s deps %d", st.Hash, len(depsOf(st)))
	}

	// Change a, drop b, add c, take zone-a down.
	a2 := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:9")
	c := dep("cccccccc", map[string]int{"blue": 1}, "127.0.0.1:3")
	s2 := NewSnapshot(nil, 12, "example.test", map[string]routes.ZoneState{"zone-a": routes.ZoneDown}, map[string]*routes.DeploymentSpec{a2.ID: a2, c.ID: c})
	msg := decode(t, s2.Delta(s1, false))
	if len(msg.Deployments) != 2 || len(msg.Deleted) != 1 || msg.Deleted[0] != "bbbbbbbb" {
		t.Errorf("delta carries %d deployments, deleted %v; want 2 and [bbbbbbbb]", len(msg.Deployments), msg.Deleted)
	}
	st2, err := Apply(st, msg)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := st2.Table()
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Version != 12 || tbl.Len() != 2 || tbl.Lookup([]byte("aaaaaaaa")).Instances[0].Addr != "127.0.0.1:9" || tbl.Zones["zone-a"] != routes.ZoneDown {
		t.Errorf("table after delta: version %d, %d deployments", tbl.Version, tbl.Len())
	}
	// The old state is untouched.
	if depsOf(st)["aaaaaaaa"].Instances[0].Addr != "127.0.0.1:1" || len(depsOf(st)) != 2 {
		t.Error("Apply modified its input state")
	}

	// A delta applied to the wrong base is refused.
	if _, err := Apply(st2, msg); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("delta on the wrong base: %v; want ErrHashMismatch", err)
	}
	// A tampered message is caught by the hash.
	bad := decode(t, s2.Full(false))
	bad.Deployments = bad.Deployments[:1]
	if _, err := Apply(nil, bad); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("tampered full table: %v; want ErrHashMismatch", err)
	}
}

// A deployment's traffic filter crosses the wire and the disk snapshot;
// a deployment without one encodes as before (no allow key).
func TestAllowRoundTrip(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	a.Allow = []string{"10.0.0.0/8", "2001:db8::/32"}
	b := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:2")
	if enc := string(EncodeDeployment(b)); strings.Contains(enc, "allow") {
		t.Errorf("deployment without a filter: %s", enc)
	}
	s := NewSnapshot(nil, 3, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b})
	st, err := Apply(nil, decode(t, s.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := st.Table()
	if err != nil {
		t.Fatal(err)
	}
	got := tbl.Lookup([]byte("aaaaaaaa"))
	if !slices.Equal(got.Allow, a.Allow) || len(got.AllowNets) != 2 {
		t.Errorf("allow after the wire: %v, %v", got.Allow, got.AllowNets)
	}
	if tbl.Lookup([]byte("bbbbbbbb")).AllowNets != nil {
		t.Error("a filter appeared on a deployment without one")
	}
	// The filter is part of the table's hash: changing it alone is a change.
	a2 := *a
	a2.Allow = []string{"10.0.0.0/8"}
	s2 := NewSnapshot(s, 4, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: &a2, b.ID: b})
	if s2.Hash == s.Hash {
		t.Error("a filter change left the table hash as it was")
	}
	// A bad filter from a route server is refused when the table is built.
	a3 := *a
	a3.Allow = []string{"10.0.0.1/8"}
	s3 := NewSnapshot(nil, 5, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: &a3})
	st3, err := Apply(nil, decode(t, s3.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st3.Table(); !errors.Is(err, routes.ErrInvalid) || !strings.Contains(err.Error(), "host bits set") {
		t.Errorf("table with a bad filter: %v; want ErrInvalid naming the host bits", err)
	}
}

func TestEncodingIsCanonical(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1, "green": 0}, "127.0.0.1:1", "127.0.0.1:2")
	b := *a
	b.Instances = []*routes.Instance{a.Instances[1], a.Instances[0]}
	if string(EncodeDeployment(a)) != string(EncodeDeployment(&b)) {
		t.Error("instance order changes the encoding")
	}
	s1 := NewSnapshot(nil, 1, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a})
	s2 := NewSnapshot(nil, 1, "example.test", nil, map[string]*routes.DeploymentSpec{b.ID: &b})
	if s1.Hash != s2.Hash {
		t.Error("equal tables hash differently")
	}
}

func TestSnapshotFile(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	s := NewSnapshot(nil, 7, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a})
	path := filepath.Join(t.TempDir(), "routes.snapshot")
	if err := WriteFile(path, s.Full(false)); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 7 || m.Hash != s.Hash {
		t.Errorf("read back version %d hash %s", m.Version, m.Hash)
	}
	// Flip one byte of the body: refused.
	b, _ := os.ReadFile(path)
	b[len(b)-3] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, err := ReadFile(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt file: %v; want ErrCorrupt", err)
	}
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := ReadFile(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: %v; want ErrCorrupt", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files in the cache dir; want 1", len(entries))
	}
}

func TestSnapshotReusesEncodings(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	b := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:2")
	s1 := NewSnapshot(nil, 1, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b})
	b2 := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:3")
	s2 := NewSnapshot(s1, 2, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b2})
	if e1, e2 := encoding(s1, a.ID), encoding(s2, a.ID); &e1[0] != &e2[0] {
		t.Error("unchanged deployment was encoded again")
	}
	fresh := NewSnapshot(nil, 2, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b2})
	if s2.Hash != fresh.Hash || string(encoding(s2, b.ID)) != string(encoding(fresh, b.ID)) {
		t.Error("a snapshot built from a previous one differs from one built fresh")
	}
	// The state's own full encoding matches the snapshot's.
	st, err := Apply(nil, decode(t, s2.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Full(false)) != string(s2.Full(false)) {
		t.Error("State.Full differs from Snapshot.Full")
	}
}

// A deployment sent with spaces or an unescaped & used to be kept and
// hashed as sent, while State.Full, which writes the snapshot on disk,
// writes it compact and escaped: the table was accepted from the stream
// and its snapshot refused on the next start (hash mismatch). Whatever
// Apply accepts, it must accept again from the snapshot.
func TestApplyKeepsWhatFullWrites(t *testing.T) {
	sent := []byte(`{ "id": "aaaaaaaa", "kind": "es", "aliases": ["a&b"], "serving": {"blue": 1}, "instances": [` +
		`{"id": "i-a", "addr": "127.0.0.1:1", "zone": "zone-a", "generation": "blue"}] }`)
	compact, _ := json.Marshal(json.RawMessage(sent))
	if bytes.Contains(compact, []byte(" ")) || !bytes.Contains(compact, []byte(`a\u0026b`)) {
		t.Fatalf("json.Marshal gives %s; want it compact and escaped", compact)
	}
	accepted := 0
	for _, hashed := range [][]byte{sent, compact} {
		m := &Message{Version: 5, Full: true, Domain: "example.test", Deployments: []json.RawMessage{sent},
			Hash: tableHash("example.test", nil, []string{"aaaaaaaa"}, map[string][]byte{"aaaaaaaa": hashed})}
		st, err := Apply(nil, m)
		if err != nil {
			continue
		}
		accepted++
		path := filepath.Join(t.TempDir(), "routes.snapshot")
		if err := WriteFile(path, st.Full(false)); err != nil {
			t.Fatal(err)
		}
		disk, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(nil, disk); err != nil {
			t.Errorf("the snapshot of a table Apply accepted is refused: %v", err)
		}
	}
	if accepted == 0 {
		t.Error("Apply refused the deployment whatever the hash")
	}

	// What a route server sends is kept as sent.
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	a.Aliases = []string{"a&b"}
	s := NewSnapshot(nil, 5, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a})
	st, err := Apply(nil, decode(t, s.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rawOf(st)[a.ID], encoding(s, a.ID)) {
		t.Errorf("a route server's encoding %s was kept as %s", encoding(s, a.ID), rawOf(st)[a.ID])
	}
}

// encoding is deployment id's encoding in s, nil when absent.
func encoding(s *Snapshot, id string) []byte {
	b, _ := s.Encoding(id)
	return b
}
