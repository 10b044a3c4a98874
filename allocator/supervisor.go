package allocator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/allocator/registry"
)

// saved is what the allocator keeps on disk for each instance
// (<instances dir>/<id>/state.json), so that an allocator started again
// adopts the instance instead of starting it again, and knows what it
// was assigned while ZooKeeper cannot tell it.
type saved struct {
	Assignment json.RawMessage `json:"assignment"`
	Pid        int             `json:"pid,omitempty"`
	StartTicks uint64          `json:"start_ticks,omitempty"`
	Port       int             `json:"port"`
	Restarts   int             `json:"restarts"`
	Cgroup     bool            `json:"cgroup"`
}

// supervisor runs one instance: starts it, checks its health, restarts it
// with backoff, gives up on a crash loop, and stops it when it is no
// longer assigned. Its state goes out as registry.Status through report.
type supervisor struct {
	a      *Agent
	id     string
	raw    []byte // the assignment as stored
	as     *registry.Assignment
	kind   Kind
	dir    string
	port   int
	proc   *process
	stopCh chan struct{} // closed: the instance is no longer assigned
	done   chan struct{} // closed when the supervisor has returned

	st       registry.Status
	crashes  []time.Time // recent unplanned ends, for the crash-loop window
	oomSeen  int64
	adoptPid int // an adopted process on start, 0 otherwise
}

func (s *supervisor) cgName() string { return s.id }

// setState records and reports a state change.
func (s *supervisor) setState(st registry.State, reason string) {
	s.st.State, s.st.Reason, s.st.Since = st, reason, time.Now().UTC()
	if s.proc != nil && st != registry.StateRestarting && st != registry.StateFailed {
		s.st.Pid = s.proc.pid
	} else {
		s.st.Pid = 0
	}
	s.a.report(s.id, s.st)
	s.a.log.Info("instance", "id", s.id, "state", st, "reason", reason, "pid", s.st.Pid)
}

// stopped reports whether the instance is no longer assigned.
func (s *supervisor) stopped() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return false
	}
}

// run supervises until the instance is unassigned (stop it, remove what
// it had) or ctx ends (the allocator stops: the instance keeps running).
func (s *supervisor) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		if s.stopped() {
			s.remove()
		}
	}()
	s.st.Deployment, s.st.Generation = s.as.Deployment, s.as.Generation
	s.st.Unconfined = s.a.cg == nil
	backoff := s.a.cfg.Restart.Backoff
	for {
		if s.proc == nil {
			if err := s.start(); err != nil {
				s.setState(registry.StateFailed, err.Error())
				s.idle(ctx)
				return
			}
		}
		why := s.watch(ctx)
		if ctx.Err() != nil || s.stopped() {
			return
		}
		// The instance ended, or was killed for failing its checks.
		s.proc = nil
		now := time.Now()
		s.crashes = append(s.crashes, now)
		for len(s.crashes) > 0 && now.Sub(s.crashes[0]) > s.a.cfg.Restart.Window {
			s.crashes = s.crashes[1:]
		}
		if len(s.crashes) > s.a.cfg.Restart.CrashLoop {
			s.setState(registry.StateFailed, fmt.Sprintf("crash loop: %d ends within %v; last: %s", len(s.crashes), s.a.cfg.Restart.Window, why))
			s.a.metrics.failed.Inc()
			s.idle(ctx)
			return
		}
		s.setState(registry.StateRestarting, why)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.stopCh:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, s.a.cfg.Restart.MaxBackoff)
		s.st.Restarts++
		s.a.metrics.restarts.Inc()
	}
}

// idle waits, leaving the instance stopped, until it is unassigned or the
// allocator stops.
func (s *supervisor) idle(ctx context.Context) {
	select {
	case <-s.stopCh:
	case <-ctx.Done():
	}
}

// start starts the instance's process (or adopts the one running), in
// its cgroup, on its port.
func (s *supervisor) start() error {
	a := s.a
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o755); err != nil {
		return err
	}
	if s.port == 0 {
		p, err := a.ports.take(a.cfg.Host)
		if err != nil {
			return err
		}
		s.port = p
	}
	s.st.Addr = net.JoinHostPort(a.cfg.Host, strconv.Itoa(s.port))
	if s.adoptPid != 0 {
		pid := s.adoptPid
		s.adoptPid = 0
		if p, err := adoptProcess(pid, s.savedTicks()); err == nil {
			s.proc = p
			if a.cg != nil {
				s.oomSeen, _ = a.cg.oomKills(s.cgName()) // kills before now are not this process's
			}
			a.log.Info("adopted a running instance", "id", s.id, "pid", pid)
			s.setState(registry.StateStarting, "adopted")
			return nil
		} else {
			a.log.Info("not adopting", "id", s.id, "reason", err)
		}
	}
	var procs []string
	if a.cg != nil {
		var err error
		if procs, err = a.cg.create(s.cgName(), s.as.MemoryBytes); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		s.oomSeen, _ = a.cg.oomKills(s.cgName())
	}
	env := append(os.Environ(), s.kind.Env...)
	env = append(env,
		"SWITCHYARD_INSTANCE_ID="+s.id,
		"SWITCHYARD_DEPLOYMENT="+s.as.Deployment,
		"SWITCHYARD_KIND="+s.as.Kind,
		"SWITCHYARD_GENERATION="+s.as.Generation,
		"SWITCHYARD_ZONE="+a.cfg.Zone,
		"SWITCHYARD_HOST="+a.cfg.Host,
		"SWITCHYARD_PORT="+strconv.Itoa(s.port),
		"SWITCHYARD_DATA_DIR="+filepath.Join(s.dir, "data"),
		"SWITCHYARD_MEMORY_BYTES="+strconv.FormatInt(s.as.MemoryBytes, 10),
		"SWITCHYARD_INSTANCE_SPEC="+string(s.as.Spec),
	)
	p, err := startProcess(a.self, s.kind.Command, env, s.dir, filepath.Join(s.dir, "instance.log"), procs)
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.kind.Command[0], err)
	}
	s.proc = p
	s.save()
	s.setState(registry.StateStarting, "")
	return nil
}

func (s *supervisor) savedTicks() uint64 {
	var sv saved
	if b, err := os.ReadFile(filepath.Join(s.dir, "state.json")); err == nil {
		_ = json.Unmarshal(b, &sv)
	}
	return sv.StartTicks
}

// save writes the instance's state file, atomically.
func (s *supervisor) save() {
	sv := saved{Assignment: s.raw, Port: s.port, Restarts: s.st.Restarts, Cgroup: s.a.cg != nil}
	if s.proc != nil {
		sv.Pid, sv.StartTicks = s.proc.pid, s.proc.start
	}
	b, _ := json.Marshal(sv)
	tmp := filepath.Join(s.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, filepath.Join(s.dir, "state.json"))
	}
}

// watch checks the running instance until it ends or fails its checks
// (then it is killed) and returns why; or until it is unassigned (then it
// is stopped) or the allocator stops (then it is left running).
func (s *supervisor) watch(ctx context.Context) string {
	cfg := s.a.cfg.Health
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	started := time.Now()
	fails, oks := 0, 0
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-s.stopCh:
			s.setState(registry.StateStopping, "unassigned")
			s.proc.stop(s.a.cfg.StopGrace)
			return "stopped"
		case <-s.proc.done:
			return s.endReason()
		case <-tick.C:
		}
		err := s.check(ctx)
		switch {
		case err == nil:
			fails, oks = 0, oks+1
			if s.st.State != registry.StateRunning && oks >= cfg.Healthy {
				s.setState(registry.StateRunning, "")
			}
		case s.st.State == registry.StateStarting && time.Since(started) < cfg.StartTimeout:
			// Not up yet.
		default:
			oks, fails = 0, fails+1
			if s.st.State == registry.StateRunning {
				s.setState(registry.StateUnhealthy, err.Error())
			}
			if fails >= cfg.Unhealthy || s.st.State == registry.StateStarting {
				why := "health check failed: " + err.Error()
				if s.st.State == registry.StateStarting {
					why = fmt.Sprintf("not healthy within %v: %v", cfg.StartTimeout, err)
				}
				s.proc.kill()
				return why
			}
		}
	}
}

// endReason says why the process ended: "oom" when its cgroup's OOM
// count went up, else its exit.
func (s *supervisor) endReason() string {
	if s.a.cg != nil {
		if n, err := s.a.cg.oomKills(s.cgName()); err == nil && n > s.oomSeen {
			s.oomSeen = n
			s.a.metrics.oomKills.Inc()
			return "oom"
		}
	}
	return s.proc.exit.String()
}

// check is one health check: GET the kind's health path, 2xx within the
// timeout.
func (s *supervisor) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.a.cfg.Health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.st.Addr+s.kind.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := s.a.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %v", s.a.cfg.Health.Timeout)
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// remove frees what the unassigned instance had: its cgroup, port and
// directory; and its status goes.
func (s *supervisor) remove() {
	a := s.a
	if s.proc != nil {
		s.proc.stop(a.cfg.StopGrace)
		s.proc = nil
	}
	if a.cg != nil {
		if err := a.cg.remove(s.cgName()); err != nil {
			a.log.Warn("removing the instance's cgroup", "id", s.id, "error", err)
		}
	}
	if s.port != 0 {
		a.ports.release(s.port)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		a.log.Warn("removing the instance's directory", "id", s.id, "error", err)
	}
	a.forget(s.id)
	a.log.Info("instance removed", "id", s.id)
}
