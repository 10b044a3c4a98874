package wire

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// Full writes the deployments' encodings as they are instead of through
// json.Marshal: the bytes must still be json.Marshal's, for snapshots
// and states, stale or not, with names that json escapes and zones or
// none.
func TestFullIsJSONMarshal(t *testing.T) {
	for _, tc := range []struct {
		n     int
		zones map[string]routes.ZoneState
		name  string
	}{
		{1, nil, "plain"},
		{3, map[string]routes.ZoneState{"zone-b": routes.ZoneDown, "zone-a": routes.ZoneUp}, `<search> & "logs" \ é`},
		{50, map[string]routes.ZoneState{"zone-c": routes.ZoneDown}, "\u2028 line separator"},
	} {
		deps := map[string]*routes.DeploymentSpec{}
		for i := 0; i < tc.n; i++ {
			d := dep(fmt.Sprintf("%08x", i), map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", i))
			d.DisplayName = tc.name
			deps[d.ID] = d
		}
		s := NewSnapshot(nil, 7, "example.test", tc.zones, deps)
		st := mustApply(t, s)
		for _, stale := range []bool{false, true} {
			m := Message{Version: s.Version, Hash: s.Hash, Full: true, Stale: stale, Domain: s.Domain, Zones: s.Zones}
			ids := make([]string, 0, len(deps))
			for id := range deps {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				m.Deployments = append(m.Deployments, EncodeDeployment(deps[id]))
			}
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Full(stale); string(got) != string(want) {
				t.Errorf("Snapshot.Full (%d, %q, stale %v):\n%s\nwant:\n%s", tc.n, tc.name, stale, got, want)
			}
			if got := st.Full(stale); string(got) != string(want) {
				t.Errorf("State.Full (%d, %q, stale %v):\n%s\nwant:\n%s", tc.n, tc.name, stale, got, want)
			}
		}
	}
}
