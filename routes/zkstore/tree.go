package zkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"

	"github.com/go-zookeeper/zk"
)

// tree is the layout as read: the znodes' data and stats. Store.Read
// builds one in a single pass; the Watcher keeps one current with watches.
// It is owned by one goroutine.
type tree struct {
	hasRoot   bool
	hasConfig bool
	config    znode
	hasZones  bool
	zonesStat zk.Stat
	zones     map[string]znode
	hasDeps   bool
	depsStat  zk.Stat
	deps      map[string]*depTree
}

type znode struct {
	data []byte
	stat zk.Stat
}

// depTree is one deployment's znodes.
type depTree struct {
	node      znode
	hasInsts  bool
	instsStat zk.Stat
	instances map[string]znode
	// sealed, when not 0, is the version of a deployment whose znodes
	// were dropped (see seal), and sealedWritten its znode's mzxid; built
	// is what its znodes built. The rest is empty.
	sealed, sealedWritten int64
	built                 builtDep
}

// written is the zxid of the last write of the deployment's own znode,
// by which deployments claim alias keys in order.
func (d *depTree) written() int64 {
	if d.sealed != 0 {
		return d.sealedWritten
	}
	return d.node.stat.Mzxid
}

// seal returns a depTree that holds only d's version and what its znodes
// build (b, built from d). The Watcher keeps these under its persistent
// watch, which reads a deployment whole again on any change: the znodes'
// data and stats are not looked at again once built, and at 100 000
// deployments they are about half its heap. A sealed deployment and its
// build travel together: a read that fails part way leaves both as they
// were.
func (d *depTree) seal(b builtDep) *depTree {
	return &depTree{sealed: d.version(), sealedWritten: d.written(), built: b}
}

// rawSum is a digest of what a deployment's znodes hold (its data, and
// its instances' names and data in name order), which is all that
// buildDeployment looks at: equal sums, the same build.
func rawSum(r *rawDeployment) uint64 {
	h := fnv.New64a()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(r.data)
	if r.hasInsts {
		h.Write([]byte{1})
	}
	for _, id := range slices.Sorted(maps.Keys(r.instances)) {
		put([]byte(id))
		put(r.instances[id])
	}
	return h.Sum64()
}

// version is the highest zxid of the deployment's znodes: any change in
// its subtree raises it.
func (d *depTree) version() int64 {
	if d.sealed != 0 {
		return d.sealed
	}
	v := max(d.node.stat.Mzxid, d.node.stat.Pzxid)
	if d.hasInsts {
		v = max(v, d.instsStat.Mzxid, d.instsStat.Pzxid)
	}
	for _, in := range d.instances {
		v = max(v, in.stat.Mzxid)
	}
	return v
}

// raw returns the deployment's data for buildDeployment.
func (d *depTree) raw() *rawDeployment {
	r := &rawDeployment{data: d.node.data, hasInsts: d.hasInsts, instances: make(map[string][]byte, len(d.instances))}
	for id, in := range d.instances {
		r.instances[id] = in.data
	}
	return r
}

// version is the table version of docs/zookeeper.md: the highest mzxid of
// every data znode and pzxid of every container under the root (the root
// itself and routeservers aside, which hold no table content).
func (t *tree) version() int64 {
	var v int64
	if t.hasConfig {
		v = max(v, t.config.stat.Mzxid)
	}
	if t.hasZones {
		v = max(v, t.zonesVersion())
	}
	if t.hasDeps {
		v = max(v, t.depsStat.Pzxid)
		for _, d := range t.deps {
			v = max(v, d.version())
		}
	}
	return v
}

// zonesVersion is the highest zxid of the zones container and its zones.
func (t *tree) zonesVersion() int64 {
	v := t.zonesStat.Pzxid
	for _, z := range t.zones {
		v = max(v, z.stat.Mzxid)
	}
	return v
}

// Kinds of watch, as the server keeps them per path.
type watchKind uint8

const (
	watchData  watchKind = iota // GetW, or ExistsW on an existing node
	watchChild                  // ChildrenW
	watchExist                  // ExistsW on a missing node
)

type watchKey struct {
	path string
	kind watchKind
}

// reader reads znodes, setting one-shot watches when watch is set. It
// remembers which watches are armed, so that a re-read of a node whose
// watch has not fired yet does not register another (go-zookeeper keeps a
// channel per registration until the watch fires). It may be used from
// several goroutines.
type reader struct {
	conn  *zk.Conn
	watch bool
	// keep, if set, is given each deployment that readDeploymentSet reads
	// in batches, as soon as its batch is in, and what it returns is kept
	// instead (the Watcher evaluates and seals it there, so that a full
	// read never holds every deployment's znodes at once).
	keep func(id string, d *depTree) *depTree

	mu    sync.Mutex
	armed map[watchKey]struct{}
}

func newReader(conn *zk.Conn, watch bool) *reader {
	return &reader{conn: conn, watch: watch, armed: map[watchKey]struct{}{}}
}

// arm records a watch; it reports whether the caller must set it (it was
// not armed).
func (r *reader) needs(k watchKey) bool {
	if !r.watch {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.armed[k]
	return !ok
}

func (r *reader) arm(k watchKey) {
	r.mu.Lock()
	r.armed[k] = struct{}{}
	r.mu.Unlock()
}

// fired forgets the watches that an event on path has consumed.
func (r *reader) fired(ev zk.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Type {
	case zk.EventNodeDataChanged:
		delete(r.armed, watchKey{ev.Path, watchData})
	case zk.EventNodeCreated:
		delete(r.armed, watchKey{ev.Path, watchExist})
	case zk.EventNodeChildrenChanged:
		delete(r.armed, watchKey{ev.Path, watchChild})
	case zk.EventNodeDeleted, zk.EventNotWatching:
		delete(r.armed, watchKey{ev.Path, watchData})
		delete(r.armed, watchKey{ev.Path, watchChild})
		delete(r.armed, watchKey{ev.Path, watchExist})
	}
}

// forget drops every armed watch (the session that held them is gone).
func (r *reader) forget() {
	r.mu.Lock()
	clear(r.armed)
	r.mu.Unlock()
}

// get reads a data znode; ok is false when it does not exist.
func (r *reader) get(p string) (n znode, ok bool, err error) {
	k := watchKey{p, watchData}
	var data []byte
	var st *zk.Stat
	if r.needs(k) {
		data, st, _, err = r.conn.GetW(p)
		if err == nil {
			r.arm(k)
		}
	} else {
		data, st, err = r.conn.Get(p)
	}
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return znode{}, false, nil
	case err != nil:
		return znode{}, false, fmt.Errorf("reading %s: %w", p, err)
	}
	return znode{data: data, stat: *st}, true, nil
}

// children lists a container; ok is false when it does not exist. With
// existWatch, a missing container gets an exists watch (which fires when it
// is created) and is listed if it was created meanwhile.
func (r *reader) children(p string, existWatch bool) (names []string, st zk.Stat, ok bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		k := watchKey{p, watchChild}
		var s *zk.Stat
		if r.needs(k) {
			names, s, _, err = r.conn.ChildrenW(p)
			if err == nil {
				r.arm(k)
			}
		} else {
			names, s, err = r.conn.Children(p)
		}
		switch {
		case err == nil:
			return names, *s, true, nil
		case !errors.Is(err, zk.ErrNoNode):
			return nil, zk.Stat{}, false, fmt.Errorf("listing %s: %w", p, err)
		case !existWatch:
			return nil, zk.Stat{}, false, nil
		}
		exists, err := r.exists(p)
		if err != nil || !exists {
			return nil, zk.Stat{}, false, err
		}
	}
	return nil, zk.Stat{}, false, fmt.Errorf("listing %s: created and deleted again and again", p)
}

// exists checks a znode, with a watch that fires on its creation (when
// missing) or change (when present).
func (r *reader) exists(p string) (bool, error) {
	ke := watchKey{p, watchExist}
	if !r.needs(ke) {
		ok, _, err := r.conn.Exists(p)
		return ok, wrapRead(p, err)
	}
	ok, _, _, err := r.conn.ExistsW(p)
	if err != nil {
		return false, wrapRead(p, err)
	}
	if ok {
		r.arm(watchKey{p, watchData})
	} else {
		r.arm(ke)
	}
	return ok, nil
}

func wrapRead(p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("reading %s: %w", p, err)
}

// readAll reads the whole layout. A missing root gives a tree without
// hasRoot, not an error; errors are the client's (connection lost, ...).
func (r *reader) readAll(l layout) (*tree, error) {
	t := &tree{}
	names, _, ok, err := r.children(l.root, true)
	if err != nil || !ok {
		return t, err
	}
	t.hasRoot = true
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	if has[configNode] {
		if t.config, t.hasConfig, err = r.get(l.config()); err != nil {
			return nil, err
		}
	}
	if has[zonesNode] {
		if err := r.readZones(l, t); err != nil {
			return nil, err
		}
	}
	if has[deploymentsNode] {
		if err := r.readDeployments(l, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// readZones (re)reads the zones container and every zone.
func (r *reader) readZones(l layout, t *tree) error {
	names, st, ok, err := r.children(l.zones(), false)
	if err != nil {
		return err
	}
	t.hasZones, t.zonesStat, t.zones = ok, st, nil
	if !ok {
		return nil
	}
	t.zones = make(map[string]znode, len(names))
	for _, z := range names {
		n, ok, err := r.get(l.zone(z))
		if err != nil {
			return err
		}
		if ok {
			t.zones[z] = n
		}
	}
	return nil
}

// readDeployments (re)reads the deployments container and every
// deployment, several at a time (the client pipelines concurrent requests).
func (r *reader) readDeployments(l layout, t *tree) error {
	names, st, ok, err := r.children(l.deployments(), false)
	if err != nil {
		return err
	}
	t.hasDeps, t.depsStat, t.deps = ok, st, nil
	if !ok {
		return nil
	}
	deps, err := r.readDeploymentSet(l, names)
	t.deps = deps
	return err
}

// readParallelism bounds the deployments a full read reads at once, each
// a request at a time: the client pipelines their requests over the one
// session, so that the read is bound by the server's throughput rather
// than by round trips.
const readParallelism = DefaultInFlight

// readDeploymentSet reads the named deployments; vanished ones are left out.
// Without watches it reads them in batches (readBatch), with one-shot
// watches a request per znode (each read sets its znode's watch).
func (r *reader) readDeploymentSet(l layout, ids []string) (map[string]*depTree, error) {
	if !r.watch {
		return readDeploymentBatches(&Store{conn: r.conn, l: l}, ids, r.keep)
	}
	type result struct {
		id  string
		d   *depTree
		err error
	}
	out := make(map[string]*depTree, len(ids))
	jobs := make(chan string)
	results := make(chan result)
	var wg sync.WaitGroup
	for w := 0; w < min(readParallelism, len(ids)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				d, err := r.readDeployment(l, id)
				results <- result{id, d, err}
			}
		}()
	}
	go func() {
		for _, id := range ids {
			jobs <- id
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	var firstErr error
	for res := range results {
		switch {
		case res.err != nil && firstErr == nil:
			firstErr = res.err
		case res.d != nil:
			out[res.id] = res.d
		}
	}
	return out, firstErr
}

// readDeployment reads a deployment and its instances; nil when it does
// not exist.
//
// Without watches, the reads are checked to be of one state: every
// transaction that changes a deployment sets its znode (see Store.Apply),
// so when the deployment znode's version is the same after the instances
// were read as before, no transaction came in between; else it reads
// again (at most 5 times). With watches, the events of such a
// transaction make the Watcher read again.
func (r *reader) readDeployment(l layout, id string) (*depTree, error) {
	p := l.deployment(id)
	for attempt := 0; ; attempt++ {
		n, ok, err := r.get(p)
		if err != nil || !ok {
			return nil, err
		}
		d := &depTree{node: n}
		if err := r.readInstances(l, id, d); err != nil || r.watch || attempt == 4 {
			return d, err
		}
		ok, st, err := r.conn.Exists(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if ok && st.Version == n.stat.Version && st.Mzxid == n.stat.Mzxid {
			return d, nil
		}
	}
}

// readInstances (re)reads a deployment's instances container and every
// instance.
func (r *reader) readInstances(l layout, id string, d *depTree) error {
	names, st, ok, err := r.children(l.instances(id), true)
	if err != nil {
		return err
	}
	d.hasInsts, d.instsStat, d.instances = ok, st, make(map[string]znode, len(names))
	for _, in := range names {
		n, ok, err := r.get(l.instance(id, in))
		if err != nil {
			return err
		}
		if ok {
			d.instances[in] = n
		}
	}
	return nil
}

// readDeploymentBatches reads the named deployments streamBatchDeps to a
// batch, DefaultBatchesInFlight batches at a time; vanished ones are left
// out. With keep, what keep returns for each is kept.
func readDeploymentBatches(s *Store, ids []string, keep func(string, *depTree) *depTree) (map[string]*depTree, error) {
	out := make(map[string]*depTree, len(ids))
	batches := (len(ids) + streamBatchDeps - 1) / streamBatchDeps
	err := pipeline(context.Background(), batches, DefaultBatchesInFlight, func(b int) ([]*depTree, error) {
		read, err := s.readBatch(ids[b*streamBatchDeps:min(len(ids), (b+1)*streamBatchDeps)], nil)
		if err != nil {
			return nil, err
		}
		return read.deps, nil
	}, func(b int, deps []*depTree) error {
		for j, d := range deps {
			if d == nil {
				continue
			}
			id := ids[b*streamBatchDeps+j]
			if keep != nil {
				d = keep(id, d)
			}
			out[id] = d
		}
		return nil
	})
	return out, err
}
