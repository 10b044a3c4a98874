package zkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// Store reads and writes the routing table under one root. It does not
// own the connection. Its methods may be called from several goroutines.
type Store struct {
	conn *zk.Conn
	l    layout
}

// New returns a Store over conn for the layout under root (DefaultRoot if
// empty).
func New(conn *zk.Conn, root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	if err := CheckRoot(root); err != nil {
		return nil, err
	}
	return &Store{conn: conn, l: layout{root: root}}, nil
}

// Root is the store's root path.
func (s *Store) Root() string { return s.l.root }

var acl = zk.WorldACL(zk.PermAll)

// Dial connects to servers and waits until the session is established, at
// most timeout (and while ctx lasts). The error wraps ErrUnavailable. The
// client's own log lines go to logger at debug level (nil: discarded).
func Dial(ctx context.Context, servers []string, sessionTimeout, timeout time.Duration, logger *slog.Logger) (*zk.Conn, error) {
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no servers", ErrUnavailable)
	}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkLogger{logger}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				go func() {
					for range events {
					}
				}()
				return conn, nil
			}
		case <-timer.C:
			conn.Close()
			return nil, fmt.Errorf("%w: no session with %s within %v", ErrUnavailable, strings.Join(servers, ","), timeout)
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// zkLogger sends the client library's lines to a slog.Logger at debug
// level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l != nil {
		z.l.Debug(fmt.Sprintf(format, args...), "component", "zk")
	}
}

// ensureSkeleton creates the root (and its parents) and the containers
// that are missing.
func (s *Store) ensureSkeleton() error {
	parts := strings.Split(strings.TrimPrefix(s.l.root, "/"), "/")
	p := ""
	for _, part := range parts {
		p += "/" + part
		if err := s.createIfMissing(p); err != nil {
			return err
		}
	}
	for _, c := range []string{s.l.zones(), s.l.deployments(), s.l.routeServers(), s.l.aliases()} {
		if err := s.createIfMissing(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) createIfMissing(p string) error {
	_, err := s.conn.Create(p, nil, 0, acl)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// requireRoot fails with ErrNoRoot when the layout is not there.
func (s *Store) requireRoot() error {
	ok, _, err := s.conn.Exists(s.l.deployments())
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.l.deployments(), err)
	}
	if !ok {
		return fmt.Errorf("%w: %s does not exist (run yardctl apply first?)", ErrNoRoot, s.l.deployments())
	}
	return nil
}

// Read reads the whole table. Invalid parts are left out and said in
// Invalid. A missing root or deployments container is ErrNoRoot.
func (s *Store) Read(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := newReader(s.conn, false).readAll(s.l)
	if err != nil {
		return nil, err
	}
	snap, err := newEvaluator(s.l).eval(t)
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// ReadSpec reads one deployment as stored, and its znode's content (with
// previous_serving). ErrNotFound if it does not exist; an invalid one is
// an error wrapping ErrInvalid that names the znode.
func (s *Store) ReadSpec(ctx context.Context, id string) (*routes.DeploymentSpec, DeploymentData, error) {
	_, dd, d, err := s.readDep(ctx, id)
	return d, dd, err
}

func (s *Store) readDep(ctx context.Context, id string) (*depTree, DeploymentData, *routes.DeploymentSpec, error) {
	var dd DeploymentData
	if err := ctx.Err(); err != nil {
		return nil, dd, nil, err
	}
	if err := checkName("deployment", id); err != nil {
		return nil, dd, nil, err
	}
	dt, err := newReader(s.conn, false).readDeployment(s.l, id)
	if err != nil {
		return nil, dd, nil, err
	}
	if dt == nil {
		return nil, dd, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := decode(s.l.deployment(id), dt.node.data, &dd); err != nil {
		return nil, dd, nil, err
	}
	d, err := buildDeployment(s.l, id, dt.raw())
	return dt, dd, d, err
}

// SetZone sets a zone's state and returns the zxid of the write, or the
// zone znode's last zxid when it already had that state. The layout must
// exist (ErrNoRoot).
func (s *Store) SetZone(ctx context.Context, zone string, state routes.ZoneState) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p := s.l.zone(zone)
	if err := checkName("zone", zone); err != nil {
		return 0, err
	}
	if err := checkZoneName(p, zone); err != nil {
		return 0, err
	}
	if err := s.requireRoot(); err != nil {
		return 0, err
	}
	if err := s.createIfMissing(s.l.zones()); err != nil {
		return 0, err
	}
	zxid, _, err := s.putZone(zone, state)
	return zxid, err
}

// putZone writes a zone's state if it differs; action says what it did
// ("" when nothing).
func (s *Store) putZone(zone string, state routes.ZoneState) (zxid int64, action Action, err error) {
	p := s.l.zone(zone)
	data := encode(ZoneData{State: state.String()})
	cur, ok, err := newReader(s.conn, false).get(p)
	if err != nil {
		return 0, "", err
	}
	if ok {
		if st, err := zoneState(p, cur.data); err == nil && st == state {
			return cur.stat.Mzxid, "", nil
		}
		zxid, err := s.put(p, data, &cur)
		return zxid, Updated, err
	}
	zxid, err = s.put(p, data, nil)
	return zxid, Created, err
}

// put creates p (cur nil) or sets it at cur's version, and returns the
// write's zxid. A concurrent change is ErrConflict.
func (s *Store) put(p string, data []byte, cur *znode) (int64, error) {
	if cur == nil {
		if _, err := s.conn.Create(p, data, 0, acl); err != nil {
			return 0, writeErr(p, err)
		}
		_, st, err := s.conn.Exists(p)
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", p, err)
		}
		return st.Mzxid, nil
	}
	st, err := s.conn.Set(p, data, cur.stat.Version)
	if err != nil {
		return 0, writeErr(p, err)
	}
	return st.Mzxid, nil
}

// writeErr wraps a failed write; the errors that mean another writer got
// there first wrap ErrConflict too.
func writeErr(p string, err error) error {
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) ||
		errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNotEmpty) {
		return fmt.Errorf("%w: writing %s: %w", ErrConflict, p, err)
	}
	return fmt.Errorf("writing %s: %w", p, err)
}

// SetServing sets a deployment's serving map, keeping the one it replaces
// as previous_serving (in the same write), and returns the write's zxid.
// When serving is already the one stored, nothing is written and the zxid
// is the deployment znode's last one. The deployment with the new serving
// must be valid (routes.ValidateDeployment: every instance's generation is
// in serving, a weight is positive); the error then wraps the *routes.Error.
// The write is guarded by the deployment znode's version: a concurrent
// change makes it fail with ErrConflict.
func (s *Store) SetServing(ctx context.Context, id string, serving map[string]int) (int64, error) {
	return s.setServing(ctx, id, nil, serving)
}

// SetServingIf is SetServing, done only while the deployment's serving
// map is still expect: otherwise nothing is written and the error wraps
// ErrConflict. A check and a write at the version read, so no concurrent
// change is overwritten.
func (s *Store) SetServingIf(ctx context.Context, id string, expect, serving map[string]int) (int64, error) {
	return s.setServing(ctx, id, expect, serving)
}

// setServing writes serving, when expect is nil or is the stored map.
func (s *Store) setServing(ctx context.Context, id string, expect, serving map[string]int) (int64, error) {
	dt, dd, cur, err := s.readDep(ctx, id)
	if err != nil {
		return 0, err
	}
	if expect != nil && !maps.Equal(dd.Serving, expect) {
		return 0, fmt.Errorf("%w: %s: serving is %v, not %v", ErrConflict, s.l.deployment(id), dd.Serving, expect)
	}
	if expect == nil && maps.Equal(dd.Serving, serving) {
		return dt.node.stat.Mzxid, nil
	}
	next := *cur
	next.Serving = maps.Clone(serving)
	if err := routes.ValidateDeployment(&next); err != nil {
		return 0, fmt.Errorf("%s: %w", s.l.deployment(id), err)
	}
	dd.PreviousServing, dd.Serving = dd.Serving, next.Serving
	return s.put(s.l.deployment(id), encode(dd), &dt.node)
}

// RouteServer is a route server registered under routeservers/.
type RouteServer struct {
	Name string
	RouteServerData
	Problem string // set when its znode is not valid JSON
}

// RouteServers lists the registered route servers, by name.
func (s *Store) RouteServers(ctx context.Context) ([]RouteServer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := newReader(s.conn, false)
	names, _, ok, err := r.children(s.l.routeServers(), false)
	if err != nil || !ok {
		return nil, err
	}
	slices.Sort(names)
	out := make([]RouteServer, 0, len(names))
	for _, name := range names {
		p := s.l.routeServer(name)
		n, ok, err := r.get(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		rs := RouteServer{Name: name}
		if err := decode(p, n.data, &rs.RouteServerData); err != nil {
			rs.Problem = errText(err)
		}
		out = append(out, rs)
	}
	return out, nil
}

// SetMaintenance sets an instance's maintenance flag and returns the
// write's zxid; when the flag already has that value nothing is written
// and the zxid is the highest of the deployment's znodes. The write is one
// transaction that also sets the deployment znode at the version read (as
// Apply does), so concurrent writers of the deployment are serialized: a
// concurrent change makes it fail with ErrConflict. An unknown deployment
// is ErrNotFound, an unknown instance ErrNoInstance.
func (s *Store) SetMaintenance(ctx context.Context, id, instance string, on bool) (int64, error) {
	dt, _, _, err := s.readDep(ctx, id)
	if err != nil {
		return 0, err
	}
	ip := s.l.instance(id, instance)
	cur, ok := dt.instances[instance]
	if !ok {
		return 0, fmt.Errorf("%w: %s has no instance %q", ErrNoInstance, id, instance)
	}
	var in InstanceData
	if err := decode(ip, cur.data, &in); err != nil {
		return 0, err
	}
	if in.Maintenance == on {
		return dt.version(), nil
	}
	in.Maintenance = on
	ops := []any{
		&zk.SetDataRequest{Path: s.l.deployment(id), Data: dt.node.data, Version: dt.node.stat.Version},
		&zk.SetDataRequest{Path: ip, Data: encode(in), Version: cur.stat.Version},
	}
	return s.commit(&depPlan{id: id, ops: ops})
}
