package zkstore

import (
	"context"
	"maps"
	"slices"
)

// streamBatchDeps is how many deployments one batch of Stream reads.
const streamBatchDeps = 200

// Stream reads the whole table as Scan does, and hands each deployment
// to opts.Deployment in ID order as soon as it and those before it are
// read, but reads many deployments to a request (readBatch: two
// multiReads per 200 deployments) where Scan sends one request per
// znode. opts.InFlight bounds the batches in flight; 0 means
// DefaultBatchesInFlight. The result is Scan's. A missing layout is
// ErrNoRoot.
func (s *Store) Stream(ctx context.Context, opts ScanOptions) (ScanResult, error) {
	res := ScanResult{Invalid: map[string]string{}}
	t, _, err := s.readHead(ctx)
	if err != nil {
		return res, err
	}
	head, err := newEvaluator(s.l).eval(t)
	if err != nil {
		return res, err
	}
	ids, st, err := s.conn.Children(s.l.deployments())
	if err != nil {
		return res, wrapRead(s.l.deployments(), err)
	}
	slices.Sort(ids)
	maps.Copy(res.Invalid, head.Invalid)
	res.Version = max(head.Version, st.Pzxid)
	if opts.Head != nil {
		if err := opts.Head(head, ids); err != nil {
			return res, err
		}
	}
	claims := map[string][]claim{} // alias key -> the deployments that have it
	inFlight := opts.InFlight
	if inFlight <= 0 {
		inFlight = DefaultBatchesInFlight
	}
	batches := (len(ids) + streamBatchDeps - 1) / streamBatchDeps
	err = pipeline(ctx, batches, inFlight, func(b int) ([]*depTree, error) {
		read, err := s.readBatch(ids[b*streamBatchDeps:min(len(ids), (b+1)*streamBatchDeps)], nil)
		if err != nil {
			return nil, err
		}
		return read.deps, nil
	}, func(b int, deps []*depTree) error {
		for j, dt := range deps {
			if dt == nil {
				continue // removed meanwhile
			}
			id := ids[b*streamBatchDeps+j]
			res.Deployments++
			res.Version = max(res.Version, dt.version())
			d, err := buildDeployment(s.l, id, dt.raw())
			invalid := ""
			if err != nil {
				invalid, d = errText(err), nil
				res.Invalid[id] = invalid
			} else {
				for _, k := range aliasKeys(d) {
					claims[k] = append(claims[k], claim{id, dt.node.stat.Mzxid})
				}
			}
			if opts.Deployment != nil {
				if err := opts.Deployment(id, d, invalid); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	s.refuseClaims(claims, res.Invalid)
	return res, nil
}
