package routeserver

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
)

// tableOf is a table of n deployments; the one at index changed (if any)
// has its instance on port rev.
func tableOf(version uint64, n, changed, rev int, prev map[string]*routes.DeploymentSpec) Input {
	deps := make(map[string]*routes.DeploymentSpec, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%08x", i)
		if d, ok := prev[id]; ok && i != changed {
			deps[id] = d // shared, as the store watcher shares unchanged deployments
			continue
		}
		port := 1000 + i
		if i == changed {
			port = rev
		}
		deps[id] = &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-1", Addr: "127.0.0.1:" + strconv.Itoa(port), Zone: "z", Generation: "blue"}}}
	}
	return Input{Version: version, Domain: "example.test", Synced: true, Deployments: deps}
}

// The history holds what each table changed, not the tables: a proxy at
// any version it holds gets a delta composed from the changes since, one
// older than the history gets the full table, and the history stays
// within History entries and within as many changed deployments as the
// table has.
func TestHistoryComposesDeltasFromChanges(t *testing.T) {
	for _, scheme := range []wire.HashScheme{wire.HashSHA256, wire.HashSum} {
		t.Run(scheme.String(), func(t *testing.T) { testHistory(t, scheme) })
	}
}

func testHistory(t *testing.T, scheme wire.HashScheme) {
	s, err := New(Config{Name: "rs", MaxWait: time.Millisecond, History: 4, TableHash: scheme, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	hs := srv.URL
	const n = 10
	in := tableOf(1, n, -1, 0, nil)
	s.Update(in)
	states := map[uint64]*wire.State{}
	full := func() *wire.State {
		_, body := get(t, hs+"/v1/routes")
		st, err := wire.Apply(nil, decodeMessage(t, body))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	states[1] = full()
	if got := strings.HasPrefix(states[1].Hash, "sum:"); got != (scheme == wire.HashSum) {
		t.Errorf("table hash %s with the %s scheme", states[1].Hash, scheme)
	}
	for v := uint64(2); v <= 6; v++ {
		in = tableOf(v, n, int(v)%n, int(v), in.Deployments)
		s.Update(in)
		states[v] = full()
	}
	if len(s.history) != 4 || s.held != 3 {
		t.Errorf("history: %d entries holding %d changed deployments; want 4 and 3", len(s.history), s.held)
	}
	for v := uint64(1); v <= 5; v++ {
		_, body := get(t, hs+"/v1/routes?version="+strconv.FormatUint(v, 10)+"&hash="+states[v].Hash)
		m := decodeMessage(t, body)
		if wantDelta := v >= 3; m.Full == wantDelta {
			t.Errorf("proxy at version %d: full %v; want a delta %v", v, m.Full, wantDelta)
		}
		base := states[v]
		if m.Full {
			base = nil
		} else if len(m.Deployments) != int(6-v) {
			t.Errorf("delta from %d carries %d deployments; want %d", v, len(m.Deployments), 6-v)
		}
		if st, err := wire.Apply(base, m); err != nil || st.Hash != states[6].Hash {
			t.Errorf("proxy at version %d: the answer does not apply: %v", v, err)
		}
	}

	// A table that changes every deployment: the changes held would be
	// more than one table, so the oldest entries go.
	all := tableOf(7, n, -1, 0, nil)
	for _, d := range all.Deployments {
		d.Instances[0].Addr = "127.0.0.2:1"
	}
	s.Update(all)
	if len(s.history) != 2 || s.held != n {
		t.Errorf("after a change of every deployment: %d entries holding %d; want 2 and %d", len(s.history), s.held, n)
	}
	_, body := get(t, hs+"/v1/routes?version=6&hash="+states[6].Hash)
	if m := decodeMessage(t, body); m.Full || len(m.Deployments) != n {
		t.Errorf("proxy at version 6: full %v, %d deployments; want a delta of %d", m.Full, len(m.Deployments), n)
	}
	_, body = get(t, hs+"/v1/routes?version=5&hash="+states[5].Hash)
	if m := decodeMessage(t, body); !m.Full {
		t.Error("proxy at version 5, dropped from the history: got a delta; want the full table")
	}
}

func decodeMessage(t *testing.T, body string) *wire.Message {
	t.Helper()
	var m wire.Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %.200s", err, body)
	}
	return &m
}

// A table handed as a persistent set with what changed from the Input
// before is the table handed as a map: the same hash, the same
// deployments and the same deltas; and a Base that is not what the
// current table was built from (an Input skipped) is not trusted: the
// server compares every deployment.
func TestUpdateFromChangedSet(t *testing.T) {
	for _, scheme := range []wire.HashScheme{wire.HashSHA256, wire.HashSum} {
		t.Run(scheme.String(), func(t *testing.T) {
			bySet, err := New(Config{Name: "set", TableHash: scheme, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			byMap, err := New(Config{Name: "map", TableHash: scheme, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			const n = 40
			in := tableOf(1, n, -1, 0, nil)
			ed := cowmap.New[string, *routes.DeploymentSpec](cowmap.String).Edit()
			for id, d := range in.Deployments {
				ed.Set(id, d)
			}
			set := ed.Done()
			bySet.Update(Input{Version: 1, Domain: in.Domain, Synced: true, Set: set})
			byMap.Update(in)
			for v := uint64(2); v <= 12; v++ {
				next := tableOf(v, n, int(v*7)%n, int(v), in.Deployments)
				ed := set.Edit()
				var changed []string
				for id, d := range next.Deployments {
					if in.Deployments[id] != d {
						ed.Set(id, d)
						changed = append(changed, id)
					}
				}
				if v%4 == 0 { // one removed
					id := fmt.Sprintf("%08x", v)
					ed.Delete(id)
					delete(next.Deployments, id)
					changed = append(changed, id)
				}
				base := set
				set = ed.Done()
				if v == 9 {
					base = nil // an Input the server did not see
				}
				bySet.Update(Input{Version: v, Domain: in.Domain, Synced: true, Set: set, Base: base, Changed: changed})
				byMap.Update(next)
				in = next
				if a, b := bySet.snap, byMap.snap; a.Hash != b.Hash || a.Len() != b.Len() || string(a.Full(false)) != string(b.Full(false)) {
					t.Fatalf("version %d: from the set %d deployments, hash %s; from the map %d, %s", v, a.Len(), a.Hash, b.Len(), b.Hash)
				}
				if a, b := bySet.snap.Change(), byMap.snap.Change(); fmt.Sprint(a.IDs) != fmt.Sprint(b.IDs) {
					t.Fatalf("version %d: changed %v from the set; %v from the map", v, a.IDs, b.IDs)
				}
			}
		})
	}
}
