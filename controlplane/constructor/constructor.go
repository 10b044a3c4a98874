package constructor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// Config is a constructor's configuration ("switchyard constructor").
type Config struct {
	ZK   []string
	Root string // default /switchyard
	// ID names this constructor in the election (default: host name and
	// pid).
	ID string
	// StartTimeout bounds how long a new generation has to be running
	// before its change fails. Default 5m.
	StartTimeout time.Duration
	// RetireGrace is how long the old generation keeps its instances
	// after the cutover, for its requests to end. Default 30s.
	RetireGrace time.Duration
	// ConvergeTimeout bounds the wait for the proxies to apply a cutover.
	// Default 2m.
	ConvergeTimeout time.Duration
	// RollbackRate is the share of failed attempts to a new generation,
	// as the proxies report them while the old one drains, that rolls a
	// change back; RollbackMinRequests attempts are needed first. 0
	// turns the rule off. Defaults 5% and 20.
	RollbackRate        float64
	RollbackMinRequests uint64
	// LostGrace is how long an allocator's live node must be missing
	// before its instances are replaced elsewhere. Default 60s.
	LostGrace time.Duration
	// Interval is how often plans are looked at again. Default 500ms.
	Interval       time.Duration
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if len(c.ZK) == 0 {
		return errors.New("--zk: no ZooKeeper servers")
	}
	if c.Root == "" {
		c.Root = zkstore.DefaultRoot
	}
	if err := zkstore.CheckRoot(c.Root); err != nil {
		return err
	}
	defaults := []struct {
		v *time.Duration
		d time.Duration
	}{{&c.StartTimeout, 5 * time.Minute}, {&c.RetireGrace, 30 * time.Second}, {&c.ConvergeTimeout, 2 * time.Minute},
		{&c.Interval, 500 * time.Millisecond}, {&c.SessionTimeout, 10 * time.Second}, {&c.LostGrace, time.Minute}}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.d
		}
	}
	switch {
	case c.RollbackRate == 0:
		c.RollbackRate = 0.05
	case c.RollbackRate < 0:
		c.RollbackRate = 0 // off
	case c.RollbackRate >= 1:
		return fmt.Errorf("--rollback-rate %v: want below 100%%", c.RollbackRate)
	}
	if c.RollbackMinRequests == 0 {
		c.RollbackMinRequests = cutover.DefaultMinRequests
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Constructor carries plans out: one leader at a time, the others
// standing by. Its whole state is in ZooKeeper (each plan's status), so a
// standby that becomes leader resumes the changes in flight.
type Constructor struct {
	cfg   Config
	log   *slog.Logger
	plans *plan.Store
	reg   *registry.Registry
	table *zkstore.Store
	el    *election

	leading atomic.Bool // read by Leading from any goroutine
	// lostSince is when this constructor first saw each allocator
	// without its live node (a new leader starts counting afresh).
	lostSince map[string]time.Time
}

// New checks cfg and returns a constructor.
func New(cfg Config) (*Constructor, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Constructor{cfg: cfg, log: cfg.Logger, lostSince: map[string]time.Time{}}, nil
}

func (c *Constructor) now() time.Time { return c.cfg.Now().UTC() }

// Leading reports whether this constructor leads (tests, status).
func (c *Constructor) Leading() bool { return c.leading.Load() }

// Run runs the constructor until ctx ends.
func (c *Constructor) Run(ctx context.Context) error {
	conn, events, err := zk.Connect(c.cfg.ZK, c.cfg.SessionTimeout, zk.WithLogger(zkLog{c.log}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("zookeeper: %w", err)
	}
	defer conn.Close() // our candidate goes with the session
	c.plans = plan.New(conn, c.cfg.Root)
	c.reg = registry.New(conn, c.cfg.Root)
	if c.table, err = zkstore.New(conn, c.cfg.Root); err != nil {
		return err
	}
	c.el = newElection(conn, c.cfg.Root, c.cfg.ID)
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	var wait <-chan zk.Event
	for {
		if conn.State() == zk.StateHasSession {
			if !c.leading.Load() {
				leader, ch, err := c.el.campaign()
				switch {
				case err != nil:
					c.log.Debug("election: will retry", "error", err)
				case leader:
					c.leading.Store(true)
					wait = nil
					c.log.Info("leading: carrying plans out", "id", c.cfg.ID)
				default:
					wait = ch
				}
			}
			if c.leading.Load() {
				if ok, err := c.el.still(); err == nil && !ok {
					c.leading.Store(false)
					c.log.Warn("no longer leading (session ended)", "id", c.cfg.ID)
				} else if err == nil {
					c.round(ctx)
				}
			}
		} else if c.leading.Load() {
			// Without a session we cannot know we still lead: stop acting
			// until the election says so again.
			c.leading.Store(false)
			c.log.Warn("lost ZooKeeper; standing by", "id", c.cfg.ID)
		}
		select {
		case <-ctx.Done():
			c.el.resign()
			return nil
		case <-events:
		case <-wait:
			wait = nil
		case <-tick.C:
		}
	}
}

// round looks at every plan once and advances those with work to do.
func (c *Constructor) round(ctx context.Context) {
	recs, err := c.plans.List()
	if err != nil {
		c.log.Debug("listing plans: will retry", "error", err)
		return
	}
	planned := map[string]bool{}
	for _, rec := range recs {
		planned[rec.Deployment] = true
		if rec.Invalid != "" {
			continue
		}
		if err := c.advance(ctx, rec); err != nil {
			c.log.Debug("plan: will retry", "deployment", rec.Deployment, "error", err)
		}
	}
	if err := c.collect(ctx, planned); err != nil {
		c.log.Debug("removing deployments without a plan: will retry", "error", err)
	}
	if err := c.repair(ctx, recs); err != nil {
		c.log.Debug("replacing instances: will retry", "error", err)
	}
}

// collect removes what a deleted plan left: the deployment's instances
// that have assignments leave the table (the deployment with them, when
// no other instance is left), then the assignments go, and the
// allocators stop the instances. Deployments that were never planned
// (written by yardctl apply) have no assignments and are not touched.
func (c *Constructor) collect(ctx context.Context, planned map[string]bool) error {
	views, err := c.reg.List()
	if err != nil {
		return err
	}
	orphans := map[string]map[string]string{} // deployment -> instance -> allocator
	for _, v := range views {
		for in, a := range v.Assignments {
			if planned[a.Deployment] {
				continue
			}
			if orphans[a.Deployment] == nil {
				orphans[a.Deployment] = map[string]string{}
			}
			orphans[a.Deployment][in] = v.ID
		}
	}
	for _, dep := range slices.Sorted(maps.Keys(orphans)) {
		ins := orphans[dep]
		if err := c.dropInstances(ctx, dep, func(in *routes.Instance) bool { return ins[in.ID] != "" }); err != nil {
			return err
		}
		for _, in := range slices.Sorted(maps.Keys(ins)) {
			if err := c.reg.Unassign(ins[in], in); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return err
			}
		}
		c.log.Info("plan deleted: deployment removed", "deployment", dep, "instances", len(ins))
	}
	return nil
}

// advance takes up a plan's newest revision when nothing is running for
// it, and moves the change in flight along.
func (c *Constructor) advance(ctx context.Context, rec *plan.Record) error {
	st := rec.Status
	if st == nil || (st.State.Final() && st.Revision < rec.Revision) {
		next := &plan.Status{State: plan.StateRunning, Step: stepPlace, Revision: rec.Revision,
			Generation: generation(rec.Revision), StartedAt: c.now(), Plan: rec.Plan}
		if st != nil {
			next.History = st.History
		}
		x := &change{c: c, rec: rec, st: next, ver: rec.StatusVersion}
		first, err := x.firstStep(ctx)
		if err != nil && !errors.Is(err, zkstore.ErrNotFound) {
			return err
		}
		next.Step = first
		if err := x.save(); err != nil {
			return err
		}
		c.log.Info("plan taken up", "deployment", rec.Deployment, "revision", rec.Revision, "generation", next.Generation)
		return x.advance(ctx)
	}
	if st.State.Final() {
		return nil
	}
	x := &change{c: c, rec: rec, st: st, ver: rec.StatusVersion}
	return x.advance(ctx)
}

func containsText(s, sub string) bool { return strings.Contains(s, sub) }

// zkLog sends the ZooKeeper client's lines to the logger at debug level.
type zkLog struct{ l *slog.Logger }

func (z zkLog) Printf(format string, args ...any) {
	z.l.Debug("zookeeper: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}
