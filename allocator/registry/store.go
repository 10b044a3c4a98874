package registry

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/go-zookeeper/zk"
)

var acl = zk.WorldACL(zk.PermAll)

// Registry reads and writes the allocators' znodes under one root over a
// ZooKeeper connection that the caller owns.
type Registry struct {
	conn *zk.Conn
	l    layout
}

// New returns a Registry over conn under root (e.g. "/switchyard").
func New(conn *zk.Conn, root string) *Registry {
	return &Registry{conn: conn, l: layout{root: root}}
}

// Path is the znode of allocator id, for messages.
func (r *Registry) Path(id string) string { return r.l.allocator(id) }

// AssignmentsPath is the znode whose children are id's assignments.
func (r *Registry) AssignmentsPath(id string) string { return r.l.assignments(id) }

// AssignmentPath is the znode of one assignment.
func (r *Registry) AssignmentPath(id, instance string) string { return r.l.assignment(id, instance) }

// createIfMissing creates p (empty, persistent) unless it exists.
func (r *Registry) createIfMissing(p string) error {
	if _, err := r.conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// Register writes allocator id's node (and its containers), keeping the
// Maintenance flag it has: operators set that, not the allocator.
func (r *Registry) Register(id string, a Allocator) error {
	if err := CheckName("allocator id", id); err != nil {
		return err
	}
	for _, p := range []string{r.l.root, r.l.allocators()} {
		if err := r.createIfMissing(p); err != nil {
			return err
		}
	}
	p := r.l.allocator(id)
	for attempt := 0; attempt < 5; attempt++ {
		data, st, err := r.conn.Get(p)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			if _, err := r.conn.Create(p, encode(a), 0, acl); errors.Is(err, zk.ErrNodeExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("creating %s: %w", p, err)
			}
		case err != nil:
			return fmt.Errorf("reading %s: %w", p, err)
		default:
			var cur Allocator
			if decodeInto(p, data, &cur) == nil {
				a.Maintenance, a.Vacate = cur.Maintenance, cur.Vacate
			}
			if _, err := r.conn.Set(p, encode(a), st.Version); errors.Is(err, zk.ErrBadVersion) {
				continue
			} else if err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
		for _, c := range []string{r.l.assignments(id), r.l.statuses(id)} {
			if err := r.createIfMissing(c); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: %w", p, ErrConflict)
}

// SetLive creates allocator id's ephemeral live node for this session,
// replacing one that an older session left (it goes when that session
// expires, but the allocator is back now).
func (r *Registry) SetLive(id string, l Live) error {
	p := r.l.live(id)
	for attempt := 0; attempt < 3; attempt++ {
		_, err := r.conn.Create(p, encode(l), zk.FlagEphemeral, acl)
		if err == nil {
			return nil
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		ok, st, err := r.conn.Exists(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if ok && st.EphemeralOwner == r.conn.SessionID() {
			return nil // ours already
		}
		if ok {
			if err := r.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return fmt.Errorf("deleting %s: %w", p, err)
			}
		}
	}
	return fmt.Errorf("%s: %w", p, ErrConflict)
}

// AssignmentsW lists allocator id's assignments and sets a watch on the
// list.
func (r *Registry) AssignmentsW(id string) ([]string, <-chan zk.Event, error) {
	p := r.l.assignments(id)
	names, _, ch, err := r.conn.ChildrenW(p)
	if err != nil {
		return nil, nil, fmt.Errorf("listing %s: %w", p, err)
	}
	slices.Sort(names)
	return names, ch, nil
}

// AssignmentW reads one assignment's raw content and sets a watch on it.
// ok is false when it is gone.
func (r *Registry) AssignmentW(id, instance string) (data []byte, ok bool, ch <-chan zk.Event, err error) {
	p := r.l.assignment(id, instance)
	data, _, ch, err = r.conn.GetW(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, false, nil, nil
	}
	if err != nil {
		return nil, false, nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, true, ch, nil
}

// PutStatus writes an instance's status.
func (r *Registry) PutStatus(id, instance string, s Status) error {
	p := r.l.status(id, instance)
	if _, err := r.conn.Set(p, encode(s), -1); errors.Is(err, zk.ErrNoNode) {
		if _, err := r.conn.Create(p, encode(s), 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", p, err)
		} else if errors.Is(err, zk.ErrNodeExists) {
			return r.PutStatus(id, instance, s)
		}
	} else if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// DeleteStatus removes an instance's status; gone already is fine.
func (r *Registry) DeleteStatus(id, instance string) error {
	p := r.l.status(id, instance)
	if err := r.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}

// StatusNames lists the instances with a status under allocator id.
func (r *Registry) StatusNames(id string) ([]string, error) {
	p := r.l.statuses(id)
	names, _, err := r.conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", p, err)
	}
	return names, nil
}

// Assign writes an assignment to allocator id, refusing one that would
// take the allocator past its capacity. The write bumps the allocator
// node's version in the same transaction, so two writers that read the
// same assignments cannot both succeed: the second gets ErrConflict and
// must read again.
func (r *Registry) Assign(id, instance string, a Assignment) error {
	if err := CheckName("instance id", instance); err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return err
	}
	v, err := r.Read(id)
	if err != nil {
		return err
	}
	if _, dup := v.Assignments[instance]; dup {
		return fmt.Errorf("%w: %s already has instance %s", ErrInvalid, id, instance)
	}
	if used := v.Used(); used+a.MemoryBytes > v.Capacity.MemoryBytes {
		return fmt.Errorf("%w: %s has %d of %d bytes assigned; %s needs %d", ErrInvalid, id, used, v.Capacity.MemoryBytes, instance, a.MemoryBytes)
	}
	_, err = r.conn.Multi(
		&zk.SetDataRequest{Path: r.l.allocator(id), Data: encode(v.Allocator), Version: v.version},
		&zk.CreateRequest{Path: r.l.assignment(id, instance), Data: encode(a), Acl: acl},
	)
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("%s: %w", r.l.allocator(id), ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("assigning %s to %s: %w", instance, id, err)
	}
	return nil
}

// Unassign removes an assignment; the allocator then stops the instance.
func (r *Registry) Unassign(id, instance string) error {
	p := r.l.assignment(id, instance)
	if err := r.conn.Delete(p, -1); errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%w: %s", ErrNotFound, p)
	} else if err != nil {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}

// SetMaintenance sets allocator id's maintenance flag (and clears
// Vacate when turning it off).
func (r *Registry) SetMaintenance(id string, on bool) error {
	return r.setFlags(id, func(a *Allocator) {
		a.Maintenance = on
		if !on {
			a.Vacate = false
		}
	})
}

// SetVacate asks the constructor to move everything off allocator id; it
// sets Maintenance too, so that nothing new is placed there.
func (r *Registry) SetVacate(id string) error {
	return r.setFlags(id, func(a *Allocator) { a.Maintenance, a.Vacate = true, true })
}

// setFlags changes allocator id's node with set, at the version read.
func (r *Registry) setFlags(id string, set func(*Allocator)) error {
	p := r.l.allocator(id)
	for attempt := 0; attempt < 5; attempt++ {
		data, st, err := r.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		var a Allocator
		if err := decodeInto(p, data, &a); err != nil {
			return err
		}
		set(&a)
		if _, err := r.conn.Set(p, encode(a), st.Version); errors.Is(err, zk.ErrBadVersion) {
			continue
		} else if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		return nil
	}
	return fmt.Errorf("%s: %w", p, ErrConflict)
}

// View is one allocator as the tree has it.
type View struct {
	ID string
	Allocator
	Live        *Live // nil: not live
	Assignments map[string]*Assignment
	// Invalid holds the assignments that do not decode, with why.
	Invalid  map[string]string
	Statuses map[string]*Status
	version  int32
}

// Used is the memory assigned to the allocator.
func (v *View) Used() int64 {
	var n int64
	for _, a := range v.Assignments {
		n += a.MemoryBytes
	}
	return n
}

// Read reads allocator id: its node, live node, assignments and statuses.
func (r *Registry) Read(id string) (*View, error) {
	p := r.l.allocator(id)
	data, st, err := r.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	v := &View{ID: id, Assignments: map[string]*Assignment{}, Invalid: map[string]string{}, Statuses: map[string]*Status{}, version: st.Version}
	if err := decodeInto(p, data, &v.Allocator); err != nil {
		return nil, err
	}
	if data, _, err := r.conn.Get(r.l.live(id)); err == nil {
		var l Live
		if decodeInto(r.l.live(id), data, &l) == nil {
			v.Live = &l
		}
	} else if !errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("reading %s: %w", r.l.live(id), err)
	}
	names, _, err := r.conn.Children(r.l.assignments(id))
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("listing %s: %w", r.l.assignments(id), err)
	}
	for _, in := range names {
		data, _, err := r.conn.Get(r.l.assignment(id, in))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", r.l.assignment(id, in), err)
		}
		a, err := DecodeAssignment(data)
		if err != nil {
			v.Invalid[in] = err.Error()
			continue
		}
		v.Assignments[in] = a
	}
	names, err = r.StatusNames(id)
	if err != nil {
		return nil, err
	}
	for _, in := range names {
		data, _, err := r.conn.Get(r.l.status(id, in))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", r.l.status(id, in), err)
		}
		var s Status
		if decodeInto(r.l.status(id, in), data, &s) == nil {
			v.Statuses[in] = &s
		}
	}
	return v, nil
}

// List reads every allocator, sorted by ID.
func (r *Registry) List() ([]*View, error) {
	names, _, err := r.conn.Children(r.l.allocators())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", r.l.allocators(), err)
	}
	slices.Sort(names)
	out := make([]*View, 0, len(names))
	for _, id := range names {
		v, err := r.Read(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// InstanceIDs are the view's assigned instances, sorted.
func (v *View) InstanceIDs() []string { return slices.Sorted(maps.Keys(v.Assignments)) }
