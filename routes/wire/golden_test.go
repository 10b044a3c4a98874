package wire

import (
	"bytes"
	"os"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// goldenSpecs are the deployments of testdata/v1.snapshot.
func goldenSpecs() map[string]*routes.DeploymentSpec {
	a := &routes.DeploymentSpec{ID: "7f3a9c2e51d04b8e", Kind: "es", Aliases: []string{"prod-search", "search"},
		Allow: []string{"10.0.0.0/8", "2001:db8::/32"}, Serving: map[string]int{"green": 10, "blue": 90},
		Instances: []*routes.Instance{
			{ID: "i-0002", Addr: "[::1]:19202", Zone: "zone-b", Generation: "green", Maintenance: true},
			{ID: "i-0001", Addr: "127.0.0.1:19201", Zone: "zone-a", Generation: "blue"},
		}}
	b := &routes.DeploymentSpec{ID: "c41d8e2b7a9f4063", Kind: "kb", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{{ID: "i-0005", Addr: "127.0.0.1:15601", Zone: "zone-a", Generation: "blue"}}}
	return map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b}
}

// testdata/v1.snapshot was written by WriteFile before deployments had
// one spec type shared with the routes file and the store, in format 1
// (a SHA-256 header). The stream and the snapshots on proxies' disks must
// keep their bytes and hashes: the same table encodes to the same body,
// and the file, which a proxy upgraded from then finds on its disk,
// loads into the same table.
func TestSnapshotV1Golden(t *testing.T) {
	want, err := os.ReadFile("testdata/v1.snapshot")
	if err != nil {
		t.Fatal(err)
	}
	zones := map[string]routes.ZoneState{"zone-b": routes.ZoneDown, "zone-a": routes.ZoneUp}
	s := NewSnapshot(nil, 42, "example.test", zones, goldenSpecs())
	if got := snapshotFileV1(s.Full(false)); !bytes.Equal(got, want) {
		t.Errorf("the snapshot file of the golden table:\n%s\nwant:\n%s", got, want)
	}

	m, err := ReadFile("testdata/v1.snapshot")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Apply(nil, m)
	if err != nil {
		t.Fatalf("Apply of the golden snapshot: %v", err)
	}
	if got := snapshotFileV1(st.Full(false)); !bytes.Equal(got, want) {
		t.Errorf("the golden snapshot read and written again:\n%s\nwant:\n%s", got, want)
	}
	tb, err := st.Table()
	if err != nil {
		t.Fatalf("table of the golden snapshot: %v", err)
	}
	for id, spec := range goldenSpecs() {
		d := tb.Lookup([]byte(id))
		if d == nil || !bytes.Equal(EncodeDeployment(&d.DeploymentSpec), EncodeDeployment(spec)) {
			t.Errorf("deployment %s of the golden snapshot: %+v", id, d)
		}
	}
}
