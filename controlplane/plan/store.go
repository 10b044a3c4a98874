package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// Node names under the root and under each plan.
const (
	plansNode  = "plans"
	statusNode = "status"
)

// NoStatus is the version of a status that does not exist: what
// ReadStatus and StatusW return then, and what WriteStatus takes to
// create the first one.
const NoStatus int32 = -1

var acl = zk.WorldACL(zk.PermAll)

// Store reads and writes the plans' znodes under one root over a
// ZooKeeper connection that the caller owns. Its methods may be called
// from several goroutines.
type Store struct {
	conn *zk.Conn
	root string
	// beforeWrite, when set, runs between the read and the write that
	// its version guards (tests: another writer's turn).
	beforeWrite func()
}

// New returns a Store over conn under root (zkstore.DefaultRoot if
// empty).
func New(conn *zk.Conn, root string) *Store {
	if root == "" {
		root = zkstore.DefaultRoot
	}
	return &Store{conn: conn, root: strings.TrimSuffix(root, "/")}
}

// PlansPath is the znode whose children are the plans.
func (s *Store) PlansPath() string { return s.root + "/" + plansNode }

// Path is the znode of deployment id's plan.
func (s *Store) Path(id string) string { return s.PlansPath() + "/" + id }

// StatusPath is the znode of deployment id's plan status.
func (s *Store) StatusPath(id string) string { return s.Path(id) + "/" + statusNode }

// nodeData is the content of a plan znode: the plan but for its
// deployment (the znode's name), and the revision.
type nodeData struct {
	Plan
	Revision int `json:"revision"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the package's own types always encode
	}
	return b
}

func encodePlan(p *Plan, revision int) []byte {
	q := *p
	q.Deployment = ""
	return encode(nodeData{Plan: q, Revision: revision})
}

// decodePlan parses and validates plan znode p of deployment id.
func decodePlan(p, id string, data []byte) (*Plan, int, error) {
	var n nodeData
	if err := decodeStrict(data, &n); err != nil {
		err.File = p
		return nil, 0, err
	}
	if n.Deployment != "" && n.Deployment != id {
		return nil, 0, &Error{File: p, Field: "deployment", Msg: fmt.Sprintf("deployment %q is not the znode's name", n.Deployment)}
	}
	n.Deployment = id
	if err := n.Plan.validate(); err != nil {
		err.File = p
		return nil, 0, err
	}
	if n.Revision < 1 {
		return nil, 0, &Error{File: p, Field: "revision", Msg: fmt.Sprintf("revision %d: want 1 or more", n.Revision)}
	}
	return n.Plan.withDefaults(), n.Revision, nil
}

// revisionOf reads only the revision of a plan znode, whatever else it
// holds (0 if it has none).
func revisionOf(data []byte) int {
	var n struct {
		Revision int `json:"revision"`
	}
	_ = json.Unmarshal(data, &n)
	return max(n.Revision, 0)
}

// decodeStatus parses status znode p. Unknown keys are ignored: a status
// is a report, and a reader older than its writer still shows it.
func decodeStatus(p string, data []byte) (*Status, error) {
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, &Error{File: p, Msg: "not a status: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	return &st, nil
}

// checkID refuses what is not a deployment ID, and so no znode name of a
// plan.
func checkID(id string) error {
	if !routes.IsDeploymentID(id) {
		return &Error{Field: "deployment", Msg: fmt.Sprintf("deployment id %q is not %d to %d lowercase hex digits", id, routes.MinIDLen, routes.MaxIDLen)}
	}
	return nil
}

func (s *Store) hook() {
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
}

// createIfMissing creates p (empty, persistent) unless it exists.
func (s *Store) createIfMissing(p string) error {
	if _, err := s.conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// ensureContainers creates the root (and its parents) and plans/.
func (s *Store) ensureContainers() error {
	p := ""
	for part := range strings.SplitSeq(strings.TrimPrefix(s.root, "/"), "/") {
		p += "/" + part
		if err := s.createIfMissing(p); err != nil {
			return err
		}
	}
	return s.createIfMissing(s.PlansPath())
}

// ApplyResult is what Apply did.
type ApplyResult struct {
	Deployment string
	Revision   int  // the plan's revision now
	Previous   int  // its revision before; 0 when it is new
	Created    bool // there was no plan
	// Changed is false when the stored plan was equal (Plan.Equal) and
	// nothing was written.
	Changed bool
}

// Apply writes p as deployment p.Deployment's plan, after validating it
// whole (an *Error wrapping ErrInvalid; nothing written). A new plan is
// created at revision 1 (with the root and plans/ when missing); a plan
// that differs from the stored one is set at the version read, with its
// revision one more; an equal one is not written at all. A lost race
// (the znode created, changed or deleted since it was read) is
// ErrConflict: Apply does not retry, the caller reads again.
func (s *Store) Apply(p *Plan) (ApplyResult, error) {
	if err := p.validate(); err != nil {
		return ApplyResult{}, err
	}
	q := p.withDefaults()
	res := ApplyResult{Deployment: q.Deployment}
	path := s.Path(q.Deployment)
	data, st, err := s.conn.Get(path)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		if err := s.ensureContainers(); err != nil {
			return res, err
		}
		s.hook()
		if _, err := s.conn.Create(path, encodePlan(q, 1), 0, acl); errors.Is(err, zk.ErrNodeExists) {
			return res, fmt.Errorf("%s: created by another writer: %w", path, ErrConflict)
		} else if err != nil {
			return res, fmt.Errorf("creating %s: %w", path, err)
		}
		res.Revision, res.Created, res.Changed = 1, true, true
		return res, nil
	case err != nil:
		return res, fmt.Errorf("reading %s: %w", path, err)
	}
	res.Previous = revisionOf(data)
	res.Revision = res.Previous
	// A stored plan that does not decode is replaced: the revision goes
	// on from the one it has.
	if cur, _, err := decodePlan(path, q.Deployment, data); err == nil && cur.Equal(q) {
		return res, nil
	}
	s.hook()
	if _, err := s.conn.Set(path, encodePlan(q, res.Previous+1), st.Version); errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		return res, fmt.Errorf("%s: changed by another writer: %w", path, ErrConflict)
	} else if err != nil {
		return res, fmt.Errorf("writing %s: %w", path, err)
	}
	res.Revision, res.Changed = res.Previous+1, true
	return res, nil
}

// Record is a plan as the tree has it.
type Record struct {
	Deployment string
	Plan       *Plan // nil in a List record whose Invalid is set
	Revision   int
	Version    int32 // the plan znode's version
	// Status is nil until the constructor writes one; StatusVersion is
	// then NoStatus.
	Status        *Status
	StatusVersion int32
	// Invalid, in List only, says why the plan or its status does not
	// decode (one line naming the znode).
	Invalid string
}

// Read reads deployment id's plan and its status. ErrNotFound if there is
// no plan; an *Error wrapping ErrInvalid, naming the znode, if the plan or
// its status does not decode.
func (s *Store) Read(id string) (*Record, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	path := s.Path(id)
	data, st, err := s.conn.Get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	r := &Record{Deployment: id, Version: st.Version, StatusVersion: NoStatus}
	if r.Plan, r.Revision, err = decodePlan(path, id, data); err != nil {
		return nil, err
	}
	r.Status, r.StatusVersion, err = s.ReadStatus(id)
	if errors.Is(err, ErrNotFound) {
		return nil, err // deleted between the reads
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// List reads every plan with its status, sorted by deployment. A plan
// whose znodes do not decode is listed with Invalid set.
func (s *Store) List() ([]*Record, error) {
	names, _, err := s.conn.Children(s.PlansPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s.PlansPath(), err)
	}
	slices.Sort(names)
	out := make([]*Record, 0, len(names))
	for _, id := range names {
		r, err := s.Read(id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // deleted since listed
		case errors.Is(err, ErrInvalid):
			r = &Record{Deployment: id, StatusVersion: NoStatus, Invalid: err.Error()}
		case err != nil:
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteOptions are the options of Delete.
type DeleteOptions struct {
	// Force deletes the plan even while its status says running.
	Force bool
}

// Delete removes deployment id's plan and its status in one transaction,
// each at the version read, and returns what it removed. It refuses
// (ErrRunning) while the status says running, unless opts.Force.
// ErrNotFound if there is no plan; ErrConflict if either znode changed
// since it was read (or a status appeared).
func (s *Store) Delete(id string, opts DeleteOptions) (*Record, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	path := s.Path(id)
	data, st, err := s.conn.Get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	r := &Record{Deployment: id, Revision: revisionOf(data), Version: st.Version, StatusVersion: NoStatus}
	r.Plan, _, _ = decodePlan(path, id, data) // a plan that does not decode can still go
	sp := s.StatusPath(id)
	sdata, sst, err := s.conn.Get(sp)
	switch {
	case errors.Is(err, zk.ErrNoNode):
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", sp, err)
	default:
		r.StatusVersion = sst.Version
		r.Status, _ = decodeStatus(sp, sdata) // nor does a status
	}
	if r.Status != nil && r.Status.State == StateRunning && !opts.Force {
		return r, fmt.Errorf("%w: %s: revision %d, step %q", ErrRunning, id, r.Status.Revision, r.Status.Step)
	}
	var ops []any
	if r.StatusVersion != NoStatus {
		ops = append(ops, &zk.DeleteRequest{Path: sp, Version: r.StatusVersion})
	}
	ops = append(ops, &zk.DeleteRequest{Path: path, Version: r.Version})
	s.hook()
	_, err = s.conn.Multi(ops...)
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNotEmpty) {
		return r, fmt.Errorf("%s: changed by another writer: %w", path, ErrConflict)
	}
	if err != nil {
		return r, fmt.Errorf("deleting %s: %w", path, err)
	}
	return r, nil
}

// ReadStatus reads deployment id's plan status and its znode's version:
// nil and NoStatus when there is none yet. ErrNotFound if there is no
// plan.
func (s *Store) ReadStatus(id string) (*Status, int32, error) {
	if err := checkID(id); err != nil {
		return nil, NoStatus, err
	}
	sp := s.StatusPath(id)
	data, st, err := s.conn.Get(sp)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, NoStatus, s.requirePlan(id)
	case err != nil:
		return nil, NoStatus, fmt.Errorf("reading %s: %w", sp, err)
	}
	status, err := decodeStatus(sp, data)
	if err != nil {
		return nil, NoStatus, err
	}
	return status, st.Version, nil
}

// StatusW is ReadStatus with a watch: ch fires when the status is
// created, changed or deleted (or the session ends). The version is what
// WriteStatus takes to replace this status.
func (s *Store) StatusW(id string) (status *Status, version int32, ch <-chan zk.Event, err error) {
	if err := checkID(id); err != nil {
		return nil, NoStatus, nil, err
	}
	sp := s.StatusPath(id)
	for {
		data, st, ch, err := s.conn.GetW(sp)
		if errors.Is(err, zk.ErrNoNode) {
			// Watch for its creation; it may have been created since.
			ok, _, ch, err := s.conn.ExistsW(sp)
			if err != nil {
				return nil, NoStatus, nil, fmt.Errorf("reading %s: %w", sp, err)
			}
			if ok {
				continue
			}
			if err := s.requirePlan(id); err != nil {
				return nil, NoStatus, nil, err
			}
			return nil, NoStatus, ch, nil
		}
		if err != nil {
			return nil, NoStatus, nil, fmt.Errorf("reading %s: %w", sp, err)
		}
		status, err := decodeStatus(sp, data)
		if err != nil {
			return nil, NoStatus, nil, err
		}
		return status, st.Version, ch, nil
	}
}

// requirePlan returns ErrNotFound when deployment id has no plan.
func (s *Store) requirePlan(id string) error {
	ok, _, err := s.conn.Exists(s.Path(id))
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.Path(id), err)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

// WriteStatus writes deployment id's plan status at expectedVersion, the
// version read (ReadStatus, StatusW), or creates it when expectedVersion
// is NoStatus, and returns the znode's new version. History beyond
// MaxHistory entries is dropped, oldest first. ErrNotFound if there is no
// plan; ErrConflict if the status was written or deleted (or, for
// NoStatus, created) since it was read; an *Error wrapping ErrInvalid for
// a status that Validate refuses.
func (s *Store) WriteStatus(id string, status *Status, expectedVersion int32) (int32, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	if err := status.validate(); err != nil {
		return 0, err
	}
	if expectedVersion < NoStatus {
		return 0, &Error{Field: "version", Msg: fmt.Sprintf("status version %d: want %d (none yet) or more", expectedVersion, NoStatus)}
	}
	st := *status
	if n := len(st.History); n > MaxHistory {
		st.History = st.History[n-MaxHistory:]
	}
	sp := s.StatusPath(id)
	if expectedVersion == NoStatus {
		_, err := s.conn.Create(sp, encode(&st), 0, acl)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
		case errors.Is(err, zk.ErrNodeExists):
			return 0, fmt.Errorf("%s: created by another writer: %w", sp, ErrConflict)
		case err != nil:
			return 0, fmt.Errorf("creating %s: %w", sp, err)
		}
		return 0, nil
	}
	stat, err := s.conn.Set(sp, encode(&st), expectedVersion)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		if err := s.requirePlan(id); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%s: deleted by another writer: %w", sp, ErrConflict)
	case errors.Is(err, zk.ErrBadVersion):
		return 0, fmt.Errorf("%s: changed by another writer: %w", sp, ErrConflict)
	case err != nil:
		return 0, fmt.Errorf("writing %s: %w", sp, err)
	}
	return stat.Version, nil
}
