package zkstore

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// Whole-table work (Apply, StreamAll) reads many deployments in one
// request with ZooKeeper's multiRead and writes many in one transaction:
// one request per znode costs the client and the server far more than the
// znode itself (at 20 000 deployments, 100 000 single reads take 12 s
// where 500 multiReads of 200 reads each take 0.2 s).

// Bounds of one batched request. A request must fit in the server's
// jute.maxbuffer (1 MiB by default), and so must a transaction's record
// in its log when the server reads it back.
const (
	// batchOps bounds the reads of one multiRead and the operations of
	// one transaction.
	batchOps = 1000
	// batchBytes bounds what a transaction writes (paths and data).
	batchBytes = 256 << 10
)

// DefaultBatchesInFlight bounds the batched requests (multiReads and
// transactions of many deployments) that a whole-table command keeps in
// flight over its session when the caller does not say.
const DefaultBatchesInFlight = 4

// batchRead is what readBatch read.
type batchRead struct {
	// deps holds each deployment as readDeployment reads it (nil: it
	// does not exist), in the order of the IDs asked for.
	deps []*depTree
	// extra holds the other znodes asked for, by path; ok is false for
	// a missing one.
	extra map[string]extraNode
}

type extraNode struct {
	n  znode
	ok bool
}

// readBatch reads the deployments ids, their instances and the znodes at
// extra in two multiReads (more when they hold over batchOps reads): the
// deployment znodes, their instances containers' stats and names (a
// multiRead of children has no stat: the container's data read, just
// before, gives it), and extra; then every instance, and each deployment
// znode again. As readDeployment does, a deployment whose znode changed
// between the two is read again (on its own): every transaction that
// changes a deployment sets its znode, so one that did not change was
// read in one state. An instance created or deleted on its own (not by
// such a transaction) between the stat and the names is in the names
// but not in the stat's pzxid: the version read then claims no more than
// what was read, never a change that it lacks.
func (s *Store) readBatch(ids []string, extra []string) (*batchRead, error) {
	out := &batchRead{deps: make([]*depTree, len(ids)), extra: make(map[string]extraNode, len(extra))}
	// First: each deployment and its instances' names; then extra.
	ops := make([]zk.ReadOp, 0, 3*len(ids)+len(extra))
	for _, id := range ids {
		ops = append(ops, zk.ReadOp{Path: s.l.deployment(id)}, zk.ReadOp{Path: s.l.instances(id)},
			zk.ReadOp{Path: s.l.instances(id), Children: true})
	}
	for _, p := range extra {
		ops = append(ops, zk.ReadOp{Path: p})
	}
	first, err := s.multiRead(ops)
	if err != nil {
		return nil, err
	}
	for i, p := range extra {
		r := first[3*len(ids)+i]
		n, ok, err := readResult(p, r)
		if err != nil {
			return nil, err
		}
		out.extra[p] = extraNode{n, ok}
	}
	// Then every instance listed, and the deployment again, one
	// deployment's reads never split between two requests.
	type pending struct {
		i     int
		names []string
	}
	var batch []pending
	ops = ops[:0]
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := s.multiRead(ops)
		if err != nil {
			return err
		}
		k := 0
		for _, pd := range batch {
			d := out.deps[pd.i]
			for _, name := range pd.names {
				n, ok, err := readResult(ops[k].Path, res[k])
				if err != nil {
					return err
				}
				if ok {
					d.instances[name] = n
				}
				k++
			}
			again, ok, err := readResult(ops[k].Path, res[k])
			if err != nil {
				return err
			}
			k++
			if !ok || again.stat.Version != d.node.stat.Version || again.stat.Mzxid != d.node.stat.Mzxid {
				// Changed meanwhile: read it on its own.
				if out.deps[pd.i], err = newReader(s.conn, false).readDeployment(s.l, ids[pd.i]); err != nil {
					return err
				}
			}
		}
		batch, ops = batch[:0], ops[:0]
		return nil
	}
	for i, id := range ids {
		n, ok, err := readResult(s.l.deployment(id), first[3*i])
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		d := &depTree{node: n}
		out.deps[i] = d
		c, cok, err := readResult(s.l.instances(id), first[3*i+1])
		if err != nil {
			return nil, err
		}
		list := first[3*i+2]
		names := list.Children
		switch {
		case list.Error == nil:
			d.hasInsts = true
			if cok {
				// (Created between the two reads: no stat, a version
				// that claims less than was read.)
				d.instsStat = c.stat
			}
		case !errors.Is(list.Error, zk.ErrNoNode):
			return nil, fmt.Errorf("listing %s: %w", s.l.instances(id), list.Error)
		}
		d.instances = make(map[string]znode, len(names))
		if len(ops)+len(names)+2 > batchOps {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		for _, name := range names {
			ops = append(ops, zk.ReadOp{Path: s.l.instance(id, name)})
		}
		ops = append(ops, zk.ReadOp{Path: s.l.deployment(id)})
		batch = append(batch, pending{i, names})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// multiRead runs ops in requests of at most batchOps reads.
func (s *Store) multiRead(ops []zk.ReadOp) ([]zk.ReadResult, error) {
	out := make([]zk.ReadResult, 0, len(ops))
	for len(ops) > 0 {
		n := min(len(ops), batchOps)
		res, err := s.conn.MultiRead(ops[:n]...)
		if err != nil {
			return nil, fmt.Errorf("reading %s and %d more: %w", ops[0].Path, n-1, err)
		}
		out = append(out, res...)
		ops = ops[n:]
	}
	return out, nil
}

// readResult is one data read of a multiRead as reader.get returns it.
func readResult(p string, r zk.ReadResult) (znode, bool, error) {
	switch {
	case errors.Is(r.Error, zk.ErrNoNode):
		return znode{}, false, nil
	case r.Error != nil:
		return znode{}, false, fmt.Errorf("reading %s: %w", p, r.Error)
	}
	return znode{data: r.Data, stat: *r.Stat}, true, nil
}
