package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// The /status document is read by yardctl and by operators' scripts: its
// field names are pinned by testdata/status.json.
func TestStatusJSON(t *testing.T) {
	seen := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st := Status{
		Name: "rs-a", Version: 42, Hash: "ab12", Stale: true, Deployments: 2,
		Invalid: map[string]string{"0a1b2c3d": "serving: no weight above 0"},
		Proxies: []ProxyStatus{
			{ID: "p1", Zone: "zone-a", Addr: "10.0.0.1:5000", Version: 42, Current: true, LastSeen: seen},
			{ID: "p2", Addr: "10.0.0.2:5000", Version: 40, LagSeconds: 2.5, LastSeen: seen},
		},
		Reports: []ProxyReport{{Proxy: "p1", Zone: "zone-a", ReportedAt: seen,
			Generations: []routes.GenerationCount{{Deployment: "0a1b2c3d", Generation: "green", Requests: 120, Errors: 3}}}},
	}
	got, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "status.json")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("Status JSON:\n%s\nwant (%s):\n%s", got, path, want)
	}
	var back Status
	if err := json.Unmarshal(want, &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("decoding %s: %+v, %v; want %+v", path, back, err, st)
	}
}
