package plan

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// Wait waits until deployment id's plan status reaches a final state
// (done, failed, rolled back) for revision, watching the plan and status
// znodes, and returns that status. progress, when not nil, is called with
// the status first and then each time its state or step changes; with nil
// while there is no status for revision yet (the constructor has not
// taken it up).
//
// It returns early with ErrNotFound when the plan is deleted, with
// ErrSuperseded (and the last status) when the plan or its status moves
// past revision, and with ctx's error (and the last status for revision,
// or nil) when ctx ends. A failed or rolled back revision is not an error
// here: the caller reads the state.
func (s *Store) Wait(ctx context.Context, id string, revision int, progress func(*Status)) (*Status, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	path := s.Path(id)
	var last *Status // the last status for revision
	said := false
	for {
		data, _, planCh, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return last, fmt.Errorf("%w: %s (deleted)", ErrNotFound, id)
		}
		if err != nil {
			return last, fmt.Errorf("reading %s: %w", path, err)
		}
		st, _, statusCh, err := s.StatusW(id)
		if err != nil {
			return last, err
		}
		if rev := revisionOf(data); rev > revision {
			return last, fmt.Errorf("%w: %s: revision %d is now %d", ErrSuperseded, id, revision, rev)
		}
		if st != nil && st.Revision > revision {
			return last, fmt.Errorf("%w: %s: the status is about revision %d, not %d", ErrSuperseded, id, st.Revision, revision)
		}
		if st != nil && st.Revision < revision {
			st = nil // about an earlier revision
		}
		if !said || changed(last, st) {
			said = true
			if progress != nil {
				progress(st)
			}
		}
		last = st
		if st != nil && st.State.Final() {
			return st, nil
		}
		select {
		case <-planCh:
		case <-statusCh:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

// changed reports whether b is another state or step than a.
func changed(a, b *Status) bool {
	switch {
	case a == nil || b == nil:
		return (a == nil) != (b == nil)
	}
	return a.State != b.State || a.Step != b.Step
}
