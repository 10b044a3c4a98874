package zkstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// A batched read never gives a deployment whose version covers the
// creation of an instance that it lacks, while instances are created on
// their own (not by a transaction that also sets the deployment). It did
// when the instances container's stat came from a later request than its
// names: the version then claimed a create that the read had missed, and
// a watcher at the store's version served a deployment without it.
func TestReadBatchNeverClaimsAMissingInstance(t *testing.T) {
	t.Parallel()
	s, conn := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	l := layout{root: s.Root()}
	var mu sync.Mutex
	czxid := map[string]int64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("x-%05d", i)
			p := l.instance(canaryID, name)
			if _, err := conn.Create(p, encode(InstanceData{Instance: routes.Instance{Addr: "127.0.0.1:1", Zone: "zone-a", Generation: "blue"}}), 0, acl); err != nil {
				t.Error(err)
				return
			}
			_, st, err := conn.Exists(p)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			czxid[name] = st.Czxid
			mu.Unlock()
		}
	}()
	bad := 0
	for iter := 0; iter < 300 && bad == 0; iter++ {
		read, err := s.readBatch([]string{canaryID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := read.deps[0]
		v := d.version()
		mu.Lock()
		for name, z := range czxid {
			if z <= v {
				if _, ok := d.instances[name]; !ok {
					t.Errorf("iter %d: version 0x%x covers the create of %s (0x%x) but the read lacks it", iter, v, name, z)
					bad++
					break
				}
			}
		}
		mu.Unlock()
	}
	close(stop)
	<-done
}

// A batched read that fails after some of its deployments were built
// leaves the tree and the evaluator as they were: the next evaluation
// still has the sealed deployment's build. It did not when the builds
// went into the evaluator's cache as the batches came: the cache then
// held a newer version than the tree, and the sealed deployment, which
// has no znodes left to build from, turned invalid.
func TestFailedReadKeepsTheSealedBuild(t *testing.T) {
	t.Parallel()
	s, _ := testStore(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, parse(t, "canary.yaml"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	l := layout{root: s.Root()}
	tr, err := newReader(s.conn, false).readAll(l)
	if err != nil {
		t.Fatal(err)
	}
	ev := &evaluator{l: l, keepOnEmpty: true, built: map[string]builtDep{}}
	if _, err := ev.eval(tr); err != nil {
		t.Fatal(err)
	}
	for id, d := range tr.deps { // as the watcher keeps them
		tr.deps[id] = sealRead(l, ev.built, id, d)
	}
	r := &run{ev: ev, persistent: true, l: l}
	if _, err := s.SetServing(ctx, canaryID, map[string]int{"blue": 50, "green": 50, "red": 0}); err != nil {
		t.Fatal(err)
	}
	read, err := s.readBatch([]string{canaryID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.keepRead(canaryID, read.deps[0])         // the batch arrived; a later batch fails: the tree is not updated
	snap, err := ev.evalChanged(tr, nil, true) // e.g. the publish after a full read whose refreshTouched failed
	if err != nil {
		t.Fatal(err)
	}
	if why := snap.Invalid[canaryID]; why != "" {
		t.Errorf("canary marked invalid after a failed read: %s", why)
	}
	if snap.Deployments[canaryID] == nil {
		t.Errorf("canary dropped")
	}
}
