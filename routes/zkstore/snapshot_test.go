package zkstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// referenceEval is how the evaluator found the deployments before it
// evaluated only what changed: every deployment, in the order they were
// last written, each given its last good version (prev) when invalid.
func referenceEval(l layout, t *tree, prev map[string]*routes.DeploymentSpec) (map[string]*routes.DeploymentSpec, map[string]string) {
	ids := slices.Collect(maps.Keys(t.deps))
	sort.Slice(ids, func(i, j int) bool {
		a, b := t.deps[ids[i]].node.stat.Mzxid, t.deps[ids[j]].node.stat.Mzxid
		if a != b {
			return a < b
		}
		return ids[i] < ids[j]
	})
	deps, invalid := map[string]*routes.DeploymentSpec{}, map[string]string{}
	claimed := map[string]string{}
	fits := func(d *routes.DeploymentSpec) (string, string) {
		for _, k := range aliasKeys(d) {
			if other, ok := claimed[k]; ok {
				return k, other
			}
		}
		return "", ""
	}
	for _, id := range ids {
		d, err := buildDeployment(l, id, t.deps[id].raw())
		if err != nil {
			invalid[id] = errText(err)
			d = nil
		} else if k, other := fits(d); k != "" {
			invalid[id] = fmt.Sprintf("%s: alias key %q is already used by deployment %s", l.deployment(id), k, other)
			d = nil
		}
		if d == nil {
			if old := prev[id]; old != nil {
				if k, _ := fits(old); k == "" {
					d = old
				}
			}
		}
		if d == nil {
			continue
		}
		deps[id] = d
		for _, k := range aliasKeys(d) {
			claimed[k] = id
		}
	}
	return deps, invalid
}

// A watcher's evaluator, told after each change which deployments it
// touched, gives over a random sequence of writes (aliases taken and
// given up, invalid znodes, deployments and instances created and
// deleted) what evaluating every deployment gives: the same deployments,
// invalid entries and version; and its Changed names exactly the entries
// that differ from the evaluation before.
//
// With sealed, the evaluator is handed what the Watcher keeps under its
// persistent watch: each deployment read whole again when it changes and
// sealed as it is read (sealRead: its version and build kept, not its
// znodes).
func TestEvaluatorOfChangesIsWhole(t *testing.T) {
	for _, noMaps := range []bool{false, true} {
		for _, sealed := range []bool{false, true} {
			t.Run(fmt.Sprintf("noMaps=%v/sealed=%v", noMaps, sealed), func(t *testing.T) { testEvaluatorOfChanges(t, noMaps, sealed) })
		}
	}
}

// cloneDep is a deep copy of a depTree, as a new read gives.
func cloneDep(d *depTree) *depTree {
	c := *d
	c.instances = maps.Clone(d.instances)
	return &c
}

func testEvaluatorOfChanges(t *testing.T, noMaps, sealed bool) {
	r := rand.New(rand.NewPCG(3, 4))
	l := layout{root: DefaultRoot}
	zxid := int64(100)
	stat := func() zk.Stat { zxid++; return zk.Stat{Mzxid: zxid, Pzxid: zxid} }
	tr := &tree{hasRoot: true, hasConfig: true, config: znode{data: []byte(`{"domain":"example.test"}`), stat: stat()},
		hasZones: true, zonesStat: stat(), zones: map[string]znode{}, hasDeps: true, depsStat: stat(), deps: map[string]*depTree{}}
	aliases := []string{`[]`, `["a"]`, `["b"]`, `["a","b"]`, `["c"]`}
	depData := func() []byte {
		if r.IntN(8) == 0 {
			return []byte(`{"kind":"es",`) // not JSON
		}
		return fmt.Appendf(nil, `{"kind":"es","aliases":%s,"serving":{"blue":%d}}`, aliases[r.IntN(len(aliases))], r.IntN(3))
	}
	instData := func() []byte {
		return fmt.Appendf(nil, `{"addr":"127.0.0.1:%d","zone":"zone-a","generation":"blue","maintenance":false}`, 1000+r.IntN(5))
	}
	ev := &evaluator{l: l, keepOnEmpty: true, noMaps: noMaps, built: map[string]builtDep{}}
	var ref map[string]*routes.DeploymentSpec
	var refVersion int64
	var last *Deployments
	var kept *tree // with sealed: the evaluator's tree
	for step := 0; step < 400; step++ {
		dirty := map[string]struct{}{}
		for n := 1 + r.IntN(3); n > 0; n-- {
			id := fmt.Sprintf("%08x", r.IntN(24))
			dirty[id] = struct{}{}
			d := tr.deps[id]
			switch op := r.IntN(10); {
			case d == nil:
				d = &depTree{node: znode{data: depData(), stat: stat()}, hasInsts: r.IntN(10) > 0, instsStat: stat(),
					instances: map[string]znode{"i-1": {data: instData(), stat: stat()}}}
				tr.deps[id], tr.depsStat = d, stat()
			case op == 0:
				delete(tr.deps, id)
				tr.depsStat = stat()
			case op < 5:
				d.node = znode{data: depData(), stat: stat()}
			case op < 8:
				d.instances[fmt.Sprintf("i-%d", r.IntN(3))] = znode{data: instData(), stat: stat()}
				d.instsStat = stat()
			default:
				delete(d.instances, fmt.Sprintf("i-%d", r.IntN(3)))
				d.instsStat = stat()
			}
		}
		if len(tr.deps) == 0 {
			continue // an empty table is an error: the next step adds one
		}
		all := step%5 == 0 // now and then, a full read
		evTree := tr
		if sealed {
			if kept == nil || all {
				kept = &tree{deps: map[string]*depTree{}}
				for id, d := range tr.deps {
					kept.deps[id] = sealRead(l, ev.built, id, cloneDep(d))
				}
			} else {
				for id := range dirty {
					if d, ok := tr.deps[id]; ok {
						kept.deps[id] = sealRead(l, ev.built, id, cloneDep(d))
					} else {
						delete(kept.deps, id)
					}
				}
			}
			deps := kept.deps
			*kept = *tr
			kept.deps = deps
			evTree = kept
		}
		snap, err := ev.evalChanged(evTree, dirty, all)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		var refInvalid map[string]string
		ref, refInvalid = referenceEval(l, tr, ref)
		refVersion = max(refVersion, tr.version())
		got := map[string]*routes.DeploymentSpec{}
		for id, d := range ev.deps.All() {
			got[id] = d
		}
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("step %d: deployments %v; want %v", step, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(ref)))
		}
		if !noMaps && !reflect.DeepEqual(snap.Deployments, ref) {
			t.Fatalf("step %d: the snapshot's map differs from its Deps", step)
		}
		if !noMaps && !sealed {
			for id, dt := range tr.deps {
				if snap.Versions[id] != dt.version() {
					t.Fatalf("step %d: Versions[%s] = %d; want %d", step, id, snap.Versions[id], dt.version())
				}
			}
			if len(snap.Versions) != len(tr.deps)+2 {
				t.Fatalf("step %d: %d versions for %d deployments, config and zones", step, len(snap.Versions), len(tr.deps))
			}
		}
		if noMaps && (snap.Deployments != nil || snap.Versions != nil) {
			t.Fatalf("step %d: maps filled without being asked for", step)
		}
		for k := range snap.Invalid {
			if _, isDep := tr.deps[k]; !isDep && refInvalid[k] == "" {
				refInvalid[k] = snap.Invalid[k] // config and zones: not the subject here
			}
		}
		if !reflect.DeepEqual(snap.Invalid, refInvalid) {
			t.Fatalf("step %d: invalid %v; want %v", step, snap.Invalid, refInvalid)
		}
		if snap.Version != refVersion {
			t.Fatalf("step %d: version %d; want %d", step, snap.Version, refVersion)
		}
		var changed []string
		if last != nil {
			for id := range ev.deps.All() {
				if a, _ := last.Get(id); a != got[id] {
					changed = append(changed, id)
				}
			}
			for id := range last.All() {
				if _, ok := got[id]; !ok {
					changed = append(changed, id)
				}
			}
			slices.Sort(changed)
			if ev.base != last || !slices.Equal(ev.changed, changed) {
				t.Fatalf("step %d: changed %v; want %v", step, ev.changed, changed)
			}
		}
		last = ev.deps
		// The reference's specs are built anew at each step: compare
		// by value, and keep the evaluator's as its last good ones.
		ref = got
	}
}

// BenchmarkEvalChange is the watcher's evaluation of a one-deployment
// change at 100 000 deployments × 3 instances: of what changed (as the
// watcher does), and of every deployment (as it did before).
//
//	go test ./routes/zkstore/ -run XXX -bench EvalChange
func BenchmarkEvalChange(b *testing.B) {
	const n = 100000
	l := layout{root: DefaultRoot}
	zxid := int64(1)
	tr := &tree{hasRoot: true, hasConfig: true, config: znode{data: []byte(`{"domain":"example.test"}`)},
		hasZones: true, zones: map[string]znode{}, hasDeps: true, deps: make(map[string]*depTree, n)}
	ids := make([]string, n)
	for i := range ids {
		d := &depTree{node: znode{data: []byte(`{"kind":"es","serving":{"blue":100}}`), stat: zk.Stat{Mzxid: zxid}},
			hasInsts: true, instances: map[string]znode{}}
		for j := 0; j < 3; j++ {
			d.instances[fmt.Sprintf("i-%d", j)] = znode{data: fmt.Appendf(nil,
				`{"addr":"127.0.0.1:%d","zone":"zone-%c","generation":"blue","maintenance":false}`, 20000+j, 'a'+j)}
		}
		ids[i] = fmt.Sprintf("%016x", i+1)
		tr.deps[ids[i]] = d
		zxid++
	}
	for _, what := range []string{"change", "whole"} {
		b.Run(what, func(b *testing.B) {
			ev := &evaluator{l: l, keepOnEmpty: true, noMaps: true, built: map[string]builtDep{}}
			if _, err := ev.eval(tr); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := ids[(i*97)%n]
				zxid++
				tr.deps[id].node = znode{data: fmt.Appendf(nil, `{"kind":"es","serving":{"blue":%d}}`, 99+i%2), stat: zk.Stat{Mzxid: zxid}}
				if _, err := ev.evalChanged(tr, map[string]struct{}{id: {}}, what == "whole"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
