package allocator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/allocator/registry"
)

// Agent is one allocator: it registers the host, runs the instances
// assigned to it and reports their state. Make one with New; Run runs it.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	self    string // this executable: the shim and the built-in instance program
	cg      *cgroups
	cgErr   error // why instances run unconfined
	ports   *ports
	http    *http.Client
	metrics *metrics
	started time.Time

	mu      sync.Mutex
	sups    map[string]*supervisor
	invalid map[string]string          // malformed assignments, with why
	status  map[string]registry.Status // the latest status of each instance
	dirty   map[string]bool            // statuses to write (or delete: not in status)
	desired map[string][]byte          // the assignments as last read
	zkUp    bool
	kick    chan struct{} // wakes the ZooKeeper loop: statuses to write
	runCtx  context.Context
	adminLn net.Listener
}

// New checks cfg and returns an allocator for it.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger, self: self,
		ports:   newPorts(cfg.PortMin, cfg.PortMax),
		http:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		sups:    map[string]*supervisor{},
		invalid: map[string]string{},
		status:  map[string]registry.Status{},
		dirty:   map[string]bool{},
		kick:    make(chan struct{}, 1),
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// AdminAddr is the admin listener's address, once Run has opened it.
func (a *Agent) AdminAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// Run runs the allocator until ctx ends. Its instances keep running after
// it returns: an allocator's end (or restart) does not stop them, and
// the next one adopts them.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now().UTC()
	if err := os.MkdirAll(a.cfg.InstancesDir, 0o755); err != nil {
		return fmt.Errorf("instances directory: %w", err)
	}
	if a.cfg.Cgroups {
		a.cg, a.cgErr = findCgroups(a.cfg.CgroupFS, "switchyard-"+a.cfg.ID)
		if a.cgErr != nil {
			a.cg = nil
			a.log.Warn("instances run without cgroups: no memory limit, no CPU share", "reason", a.cgErr)
		} else {
			a.log.Info("instances get cgroups", "version", a.cg.version, "memory", a.cg.memDir)
		}
	} else {
		a.cgErr = errors.New("cgroups turned off (--cgroups=false)")
	}
	var srv *http.Server
	if a.cfg.AdminListen != "" {
		ln, err := net.Listen("tcp", a.cfg.AdminListen)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		a.mu.Lock()
		a.adminLn = ln
		a.mu.Unlock()
		srv = &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	supCtx, cancel := context.WithCancel(context.Background())
	a.runCtx = supCtx
	defer func() {
		cancel() // supervisors return, leaving their instances running
		a.mu.Lock()
		sups := slices.Collect(maps.Values(a.sups))
		a.mu.Unlock()
		for _, s := range sups {
			<-s.done
		}
	}()
	a.adopt()
	return a.zkLoop(ctx)
}

// adopt starts a supervisor for each instance the instances directory
// holds: the assignment it was last given stands until ZooKeeper says
// otherwise, and a process still running is adopted, not restarted.
func (a *Agent) adopt() {
	entries, err := os.ReadDir(a.cfg.InstancesDir)
	if err != nil {
		a.log.Warn("reading the instances directory", "error", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(a.cfg.InstancesDir, e.Name(), "state.json"))
		if err != nil {
			continue
		}
		var sv saved
		if err := json.Unmarshal(b, &sv); err != nil {
			a.log.Warn("unreadable instance state; ignored", "id", e.Name(), "error", err)
			continue
		}
		as, err := registry.DecodeAssignment(sv.Assignment)
		if err != nil {
			continue
		}
		a.mu.Lock()
		s := a.newSupervisor(e.Name(), sv.Assignment, as)
		s.port, s.adoptPid, s.st.Restarts = sv.Port, sv.Pid, sv.Restarts
		if s.port != 0 {
			a.ports.hold(s.port)
		}
		a.mu.Unlock()
		go s.run(a.runCtx)
	}
}

// newSupervisor makes the supervisor of instance id; a.mu is held.
func (a *Agent) newSupervisor(id string, raw []byte, as *registry.Assignment) *supervisor {
	s := &supervisor{a: a, id: id, raw: raw, as: as, kind: a.cfg.kind(as.Kind),
		dir:    filepath.Join(a.cfg.InstancesDir, id),
		stopCh: make(chan struct{}), done: make(chan struct{})}
	a.sups[id] = s
	return s
}

// report records an instance's status for ZooKeeper and the admin page.
func (a *Agent) report(id string, st registry.Status) {
	a.mu.Lock()
	a.status[id] = st
	a.dirty[id] = true
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// forget drops a removed instance; its status znode goes.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	delete(a.sups, id)
	delete(a.status, id)
	a.dirty[id] = true
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// reconcile makes the supervised instances those of desired (instance
// id → assignment as stored): it starts what is new, stops what is gone,
// and replaces an instance whose assignment changed.
func (a *Agent) reconcile(desired map[string][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, s := range a.sups {
		raw, ok := desired[id]
		if ok && bytes.Equal(raw, s.raw) {
			continue
		}
		select {
		case <-s.stopCh:
		default:
			if !ok {
				a.log.Info("instance unassigned; stopping it", "id", id)
			} else {
				a.log.Info("assignment changed; replacing the instance", "id", id)
			}
			close(s.stopCh)
		}
	}
	for id := range a.invalid {
		if _, ok := desired[id]; !ok {
			delete(a.invalid, id)
			delete(a.status, id)
			a.dirty[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(desired)) {
		raw := desired[id]
		if s, ok := a.sups[id]; ok {
			if bytes.Equal(raw, s.raw) && !s.stopped() {
				continue
			}
			// Replaced (or assigned again while being stopped): the new
			// one starts once the old one is gone.
			old := s
			go func() {
				<-old.done
				a.reconcileOne(id)
			}()
			continue
		}
		a.startOne(id, raw)
	}
	a.desired = desired
}

// reconcileOne starts id again after its replaced supervisor ended, if it
// is still assigned as last read.
func (a *Agent) reconcileOne(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if raw, ok := a.desired[id]; ok {
		if _, running := a.sups[id]; !running {
			a.startOne(id, raw)
		}
	}
}

// startOne starts supervising id; a.mu is held.
func (a *Agent) startOne(id string, raw []byte) {
	if err := registry.CheckName("instance id", id); err != nil {
		a.markInvalid(id, err.Error())
		return
	}
	as, err := registry.DecodeAssignment(raw)
	if err != nil {
		a.markInvalid(id, err.Error())
		return
	}
	if a.invalid[id] != "" {
		delete(a.invalid, id)
	}
	s := a.newSupervisor(id, raw, as)
	go s.run(a.runCtx)
}

// markInvalid reports a malformed assignment; a.mu is held.
func (a *Agent) markInvalid(id, why string) {
	if a.invalid[id] == why {
		return
	}
	a.log.Warn("invalid assignment; not started", "id", id, "reason", why)
	a.invalid[id] = why
	a.status[id] = registry.Status{State: registry.StateInvalid, Reason: why, Since: time.Now().UTC()}
	a.dirty[id] = true
}

// used is the memory of the instances supervised.
func (a *Agent) used() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n int64
	for _, s := range a.sups {
		n += s.as.MemoryBytes
	}
	return n
}

// zkLoop keeps the allocator's part of ZooKeeper: registration and live
// node (again after a session expiry), the assignments (watched), and the
// statuses. Losing ZooKeeper stops nothing: the instances run on their
// last assignments, and it all resyncs when the session is back.
func (a *Agent) zkLoop(ctx context.Context) error {
	conn, events, err := zk.Connect(a.cfg.ZK, a.cfg.SessionTimeout, zk.WithLogger(zkLog{a.log}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("zookeeper: %w", err)
	}
	defer conn.Close() // the live node goes with the session
	reg := registry.New(conn, a.cfg.Root)
	var (
		session      int64
		registered   bool
		needRead     = true
		childWatch   <-chan zk.Event
		watching     = map[string]bool{}
		fired        = make(chan string, 64)
		retry        = time.NewTimer(time.Hour)
		cleanedStale bool
	)
	retry.Stop()
	failed := func(what string, err error) {
		a.log.Debug("zookeeper: will retry", "step", what, "error", err)
		retry.Reset(a.cfg.RetryInterval)
	}
	for {
		if conn.State() == zk.StateHasSession {
			if id := conn.SessionID(); id != session {
				session, registered, needRead, cleanedStale = id, false, true, false
				clear(watching)
				childWatch = nil
				a.mu.Lock()
				for id := range a.status {
					a.dirty[id] = true
				}
				a.mu.Unlock()
			}
			if !registered {
				if err := a.register(reg); err != nil {
					failed("register", err)
				} else {
					registered = true
					a.log.Info("registered", "path", reg.Path(a.cfg.ID), "session", fmt.Sprintf("0x%x", session))
				}
			}
			if registered && needRead {
				desired, ch, err := a.readAssignments(reg, watching, fired)
				if err != nil {
					failed("assignments", err)
				} else {
					childWatch, needRead = ch, false
					a.reconcile(desired)
				}
			}
			if registered && !cleanedStale && !needRead {
				if err := a.deleteStaleStatuses(reg); err != nil {
					failed("statuses", err)
				} else {
					cleanedStale = true
				}
			}
			if registered {
				if err := a.flushStatuses(reg); err != nil {
					failed("statuses", err)
				}
			}
		}
		a.setZKUp(conn.State() == zk.StateHasSession)
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.State == zk.StateExpired {
				a.log.Warn("ZooKeeper session expired; registering again with a new one")
			}
		case <-childWatch:
			childWatch, needRead = nil, true
		case p := <-fired:
			delete(watching, p)
			needRead = true
		case <-a.kick:
		case <-retry.C:
			needRead = true
		}
	}
}

func (a *Agent) setZKUp(up bool) {
	a.mu.Lock()
	changed := a.zkUp != up
	a.zkUp = up
	a.mu.Unlock()
	if changed && !up {
		a.log.Warn("lost ZooKeeper; instances keep running on their last assignments")
	}
}

// register writes the allocator's node and its live node.
func (a *Agent) register(reg *registry.Registry) error {
	if err := reg.Register(a.cfg.ID, registry.Allocator{
		Zone: a.cfg.Zone, Capacity: registry.Capacity{MemoryBytes: a.cfg.CapacityBytes}, Attributes: a.cfg.Attributes,
	}); err != nil {
		return err
	}
	return reg.SetLive(a.cfg.ID, registry.Live{Addr: a.AdminAddr(), StartedAt: a.started, Version: a.cfg.Version, Host: a.cfg.Host})
}

// readAssignments reads every assignment, watching the list and each one
// not watched yet (a fired watch sends its path on fired).
func (a *Agent) readAssignments(reg *registry.Registry, watching map[string]bool, fired chan<- string) (map[string][]byte, <-chan zk.Event, error) {
	names, ch, err := reg.AssignmentsW(a.cfg.ID)
	if err != nil {
		return nil, nil, err
	}
	desired := make(map[string][]byte, len(names))
	for _, in := range names {
		data, ok, dch, err := reg.AssignmentW(a.cfg.ID, in)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		desired[in] = data
		p := reg.AssignmentPath(a.cfg.ID, in)
		if watching[p] {
			continue // the watch set before is still there; this one doubles it
		}
		watching[p] = true
		go func() {
			<-dch
			fired <- p
		}()
	}
	return desired, ch, nil
}

// deleteStaleStatuses removes status znodes of instances this allocator
// does not know (removed while it was away).
func (a *Agent) deleteStaleStatuses(reg *registry.Registry) error {
	names, err := reg.StatusNames(a.cfg.ID)
	if err != nil {
		return err
	}
	a.mu.Lock()
	for _, in := range names {
		if _, ok := a.status[in]; !ok {
			a.dirty[in] = true
		}
	}
	a.mu.Unlock()
	return nil
}

// flushStatuses writes the statuses that changed since the last write.
func (a *Agent) flushStatuses(reg *registry.Registry) error {
	a.mu.Lock()
	ids := slices.Sorted(maps.Keys(a.dirty))
	a.mu.Unlock()
	for _, id := range ids {
		a.mu.Lock()
		st, ok := a.status[id]
		delete(a.dirty, id)
		a.mu.Unlock()
		var err error
		if ok {
			err = reg.PutStatus(a.cfg.ID, id, st)
		} else {
			err = reg.DeleteStatus(a.cfg.ID, id)
		}
		if err != nil {
			a.mu.Lock()
			a.dirty[id] = true
			a.mu.Unlock()
			return err
		}
	}
	return nil
}

// zkLog sends the ZooKeeper client's lines to the logger at debug level.
type zkLog struct{ l *slog.Logger }

func (z zkLog) Printf(format string, args ...any) {
	z.l.Debug("zookeeper: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}
