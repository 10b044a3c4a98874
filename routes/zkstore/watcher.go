package zkstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Watcher keeps an in-memory copy of the layout under Root current and
// publishes it. Set its fields, then call Run once.
//
// On each connection it first sets one persistent recursive watch on the
// root (ZooKeeper's addWatch, 3.6 and later), then reads the whole layout
// in batches (multiReads of many znodes). Every change under the root
// made after the watch was set fires an event, so a change that the read
// missed, or read half-way, is named by an event that is handled before
// the next publish. Each event names a znode; the watcher reads again
// what it belongs to: a deployment with its instances, the zones, the
// config. The server keeps one watch per route server, whatever the size
// of the table, and the start costs a few thousand requests, not one per
// znode.
//
// With a server before 3.6 (addWatch unimplemented) it falls back to
// one-shot watches: data watches on every data znode, child watches on
// every container, exists watches on the containers that are missing,
// each set by a read of its own, and re-armed by the re-read that its
// event brings.
//
// Events are handled in the order the server sent them, and a snapshot
// is published only once no event is waiting, so the changes of one
// transaction are published together.
//
// When the connection is lost the last data is published again with
// Stale set. When it comes back (in the same session or a new one), the
// persistent watch is set again, as the server dropped it with the
// connection, and the whole layout is read again after it; one-shot
// watches that are still armed are not registered again. After a session
// expiry the registration is created again: no change made meanwhile is
// lost.
type Watcher struct {
	Servers []string // host:port of the ensemble's servers
	Root    string   // DefaultRoot if empty
	// SessionTimeout is asked of the servers (which bound it to 2-20
	// ticks); 0 means 10s.
	SessionTimeout time.Duration
	Logger         *slog.Logger // nil: no logs
	// Register, if set, is kept as an ephemeral znode
	// <root>/routeservers/<Name> for the life of Run.
	Register *Registration
	// MinInterval is the least time between two publishes; 0 means 20ms.
	// A change after a quiet period is published at once.
	MinInterval time.Duration
	// DepsOnly publishes the deployments only in State.Deps, leaving the
	// Snapshot's Deployments and Versions nil: a publish then costs what
	// changed. Without it, each State also holds them as maps of their
	// own, a copy of the whole table per publish.
	DepsOnly bool

	onConn  func(*zk.Conn) // test hook: called with the connection
	oneShot bool           // test hook: one-shot watches, as with a server before 3.6
}

// Registration is a route server's entry under routeservers/.
type Registration struct {
	Name      string    // znode name
	URL       string    // where its status and table stream are served
	StartedAt time.Time // zero: when Run starts
}

// State is what a Watcher publishes. It is immutable: its maps are never
// modified after publication (copy-on-write), so a consumer may share it
// across goroutines.
type State struct {
	Snapshot
	// Stale is set while there is no ZooKeeper session, and until the
	// layout has been read again after one came back.
	Stale bool
	// Synced is set once a good read happened: a root with a deployments
	// container holding at least one deployment. Until then the Snapshot
	// is empty.
	Synced bool
	// LastSync is when the data was last known to be current.
	LastSync time.Time
	// Problem says why the data is not the store's current content (the
	// root or the deployments container is missing or empty), or "".
	Problem string
	// Deps holds what Deployments holds, as a version of a persistent
	// map: it shares with the Deps of the States before and after it
	// every shard that a change did not touch. Nil until Synced.
	Deps *Deployments
	// Base is the previous State's Deps, and Changed the IDs whose entry
	// differs between Base and Deps (added, changed or removed), sorted:
	// a consumer that has taken in Base takes in this State by looking at
	// Changed alone.
	Base    *Deployments
	Changed []string
}

// Defaults.
const (
	defaultSessionTimeout = 10 * time.Second
	defaultMinInterval    = 20 * time.Millisecond
	// retryDelay is the wait before reading again after a failed read
	// while connected.
	retryDelay = 250 * time.Millisecond
	// maxBusy bounds how long a stream of events may hold back a publish.
	maxBusy = 200 * time.Millisecond
)

// Run connects, watches and calls publish with each new State, from one
// goroutine (publish must not block for long), until ctx is done; then it
// closes the session (which removes the registration) and returns nil. It
// returns an error only for a bad configuration.
func (w *Watcher) Run(ctx context.Context, publish func(State)) error {
	root := w.Root
	if root == "" {
		root = DefaultRoot
	}
	if err := CheckRoot(root); err != nil {
		return err
	}
	if len(w.Servers) == 0 {
		return errors.New("zkstore: watcher: no servers")
	}
	if publish == nil {
		return errors.New("zkstore: watcher: publish is nil")
	}
	if w.Register != nil {
		if err := checkName("registration", w.Register.Name); err != nil {
			return err
		}
	}
	timeout := w.SessionTimeout
	if timeout <= 0 {
		timeout = defaultSessionTimeout
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "zkstore", "root", root)
	q := &eventQueue{notify: make(chan struct{}, 1)}
	conn, _, err := zk.Connect(w.Servers, timeout,
		zk.WithEventCallback(q.push), zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("zkstore: watcher: %w", err)
	}
	defer conn.Close()
	if w.onConn != nil {
		w.onConn(conn)
	}
	l := layout{root: root}
	r := &run{
		w: w, conn: conn, q: q, l: l, log: log,
		r:           newReader(conn, w.oneShot),
		persistent:  !w.oneShot,
		ev:          &evaluator{l: l, keepOnEmpty: true, noMaps: w.DepsOnly, built: map[string]builtDep{}},
		pending:     map[string]struct{}{},
		dirty:       map[string]struct{}{},
		stale:       true,
		minInterval: w.MinInterval,
		publish:     publish,
		logged:      map[string]string{},
	}
	if r.minInterval <= 0 {
		r.minInterval = defaultMinInterval
	}
	r.r.keep = r.keepRead
	if w.Register != nil {
		reg := *w.Register
		if reg.StartedAt.IsZero() {
			reg.StartedAt = time.Now().UTC()
		}
		r.reg = &reg
	}
	r.loop(ctx)
	return nil
}

// eventQueue takes the client's events without ever blocking its receive
// loop (the client's own event channel drops events when full).
type eventQueue struct {
	mu     sync.Mutex
	evs    []zk.Event
	notify chan struct{}
}

func (q *eventQueue) push(ev zk.Event) {
	q.mu.Lock()
	q.evs = append(q.evs, ev)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []zk.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.evs
	q.evs = nil
	return evs
}

func (q *eventQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.evs) == 0
}

// run is the state of one Watcher.Run, owned by its goroutine.
type run struct {
	w    *Watcher
	conn *zk.Conn
	q    *eventQueue
	l    layout
	log  *slog.Logger
	r    *reader
	ev   *evaluator
	reg  *Registration

	// persistent is set while the watches are one persistent recursive
	// watch on the root (else one-shot watches on each znode);
	// watchSet, once it is set on the current connection.
	persistent, watchSet bool

	t         *tree               // the layout as last read; nil before the first read
	pending   map[string]struct{} // znodes to read again
	dirty     map[string]struct{} // deployments changed in t since the last evaluation
	allDirty  bool                // any may have: t was read whole
	needFull  bool                // read the whole layout again
	connected bool                // in a session now
	session   int64               // the session the watches were set in
	regDue    bool                // (re)create the registration

	stale, synced bool
	lastSync      time.Time
	problem       string
	treeChanged   bool // since the last publish
	flagsChanged  bool
	state         State // the last published
	lastPub       time.Time
	minInterval   time.Duration
	publish       func(State)
	logged        map[string]string // invalid parts logged, and their error
	retryAt       time.Time
}

func (r *run) loop(ctx context.Context) {
	r.publishNow() // not synced yet, stale
	pubTimer := time.NewTimer(time.Hour)
	pubTimer.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.q.notify:
		case <-pubTimer.C:
		case <-retry.C:
		}
		start := time.Now()
		for {
			for _, ev := range r.q.drain() {
				r.handle(ev)
			}
			full := r.needFull
			if r.connected && !r.sync() {
				retry.Reset(retryDelay)
			} else if full && r.connected && !r.q.empty() {
				// A full read takes long: take what changed meanwhile
				// before publishing, whatever maxBusy says.
				continue
			}
			if r.q.empty() || time.Since(start) > maxBusy || ctx.Err() != nil {
				break
			}
		}
		if r.treeChanged || r.flagsChanged {
			if wait := time.Until(r.lastPub.Add(r.minInterval)); wait > 0 {
				pubTimer.Reset(wait)
			} else {
				r.publishNow()
			}
		}
	}
}

// handle takes one event from the client.
func (r *run) handle(ev zk.Event) {
	if ev.Type == zk.EventSession {
		switch ev.State {
		case zk.StateHasSession:
			if !r.connected {
				r.connected = true
				if id := r.conn.SessionID(); id != r.session {
					if r.session != 0 {
						r.log.Warn("new ZooKeeper session; setting every watch again", "session", fmt.Sprintf("0x%x", id))
					} else {
						r.log.Info("ZooKeeper session established", "session", fmt.Sprintf("0x%x", id), "server", r.conn.Server())
					}
					r.r.forget()
					r.session = id
					r.regDue = r.reg != nil
				} else {
					r.log.Info("ZooKeeper connection back; reading the layout again", "server", r.conn.Server())
				}
				r.needFull, r.watchSet = true, false
			}
		case zk.StateExpired:
			r.log.Warn("ZooKeeper session expired; watches and registration are gone")
			r.r.forget()
			r.setDisconnected()
		default: // disconnected, connecting, connected without a session yet
			r.setDisconnected()
		}
		return
	}
	r.r.fired(ev)
	if ev.Type == zk.EventNotWatching || ev.Path == "" {
		return
	}
	if r.persistent && ev.Type == zk.EventNodeDataChanged && ev.Path == r.l.root {
		return // the root's data is not the table's (its children are)
	}
	r.pending[ev.Path] = struct{}{}
}

func (r *run) setDisconnected() {
	if r.connected {
		r.log.Warn("lost the ZooKeeper connection; keeping the last data, marked stale")
	}
	r.connected, r.watchSet = false, false
	if !r.stale {
		r.stale, r.flagsChanged = true, true
	}
}

// sync reads what is due. It reports false when a read failed (the caller
// retries later).
func (r *run) sync() bool {
	if r.persistent && !r.watchSet {
		err := r.conn.AddWatch(r.l.root, zk.AddWatchModePersistentRecursive)
		switch {
		case errors.Is(err, zk.ErrUnimplemented):
			r.log.Warn("the ZooKeeper server has no persistent watches (3.6 or later); setting a watch on each znode")
			r.persistent, r.r.watch, r.needFull = false, true, true
		case err != nil:
			r.log.Debug("setting the watch failed; will retry", "path", r.l.root, "error", err)
			return false
		default:
			r.watchSet, r.needFull = true, true
		}
	}
	if r.needFull {
		start := time.Now()
		t, err := r.r.readAll(r.l)
		if err != nil {
			r.log.Debug("reading the layout failed; will retry", "error", err)
			return false
		}
		r.log.Info("read the whole layout", "deployments", len(t.deps), "took", time.Since(start).Round(time.Millisecond).String(),
			"watch", map[bool]string{true: "persistent", false: "one-shot"}[r.persistent])
		r.t, r.needFull, r.treeChanged, r.allDirty = t, false, true, true
		clear(r.pending) // the full read saw what they changed
		if r.reg != nil {
			r.pending[r.l.routeServer(r.reg.Name)] = struct{}{}
		}
	}
	if r.persistent && r.t != nil {
		if err := r.refreshTouched(); err != nil {
			r.log.Debug("reading deployments failed; will retry", "error", err)
			return false
		}
	}
	for _, p := range slices.Sorted(maps.Keys(r.pending)) {
		if err := r.refresh(p); err != nil {
			r.log.Debug("reading a znode failed; will retry", "path", p, "error", err)
			return false
		}
		delete(r.pending, p)
		if r.needFull { // the root changed: read everything
			return r.sync()
		}
	}
	if r.regDue {
		if err := r.register(); err != nil {
			r.log.Warn("registering failed; will retry", "path", r.l.routeServer(r.reg.Name), "error", err)
			return false
		}
	}
	if r.stale {
		r.stale, r.flagsChanged = false, true
	}
	return true
}

// publishNow evaluates the tree (if it changed) and publishes.
func (r *run) publishNow() {
	now := time.Now()
	st := r.state
	st.Base, st.Changed = st.Deps, nil
	if r.treeChanged && r.t != nil {
		snap, err := r.ev.evalChanged(r.t, r.dirty, r.allDirty)
		problem := ""
		if err != nil {
			problem = err.Error()
		} else {
			r.synced = true
			clear(r.dirty)
			r.allDirty = false
			st.Deps, st.Changed = r.ev.deps, r.ev.changed
		}
		if problem != r.problem {
			if problem != "" {
				r.log.Error("the store has no usable table; keeping the last good data", "problem", problem)
			} else if r.problem != "" {
				r.log.Info("the store has a table again")
			}
			r.problem = problem
		}
		if snap != nil {
			st.Snapshot = *snap
			r.logInvalid(snap.Invalid)
		}
	}
	if !r.stale {
		r.lastSync = now
	}
	st.Stale, st.Synced, st.LastSync, st.Problem = r.stale, r.synced, r.lastSync, r.problem
	r.state, r.lastPub = st, now
	r.treeChanged, r.flagsChanged = false, false
	r.publish(st)
}

// keepRead takes a deployment that a batched read (the full read, or
// refreshTouched) has just read. Under the persistent watch it keeps it
// sealed with its build (sealRead), so that a full read of 100 000
// deployments never holds all their znodes at once; the evaluation that
// follows takes the build from the tree.
func (r *run) keepRead(id string, d *depTree) *depTree {
	if !r.persistent {
		return d
	}
	return sealRead(r.l, r.ev.built, id, d)
}

// sealRead builds the deployment id just read as d and returns it sealed
// with that build (depTree.seal). A deployment whose znodes hold what they
// held at its build in built keeps that build (the same spec, so no change
// is reported). built, the evaluator's cache, is only read: it is written
// by the evaluation, which sees the tree that the read, if it succeeded as
// a whole, put in place.
func sealRead(l layout, built map[string]builtDep, id string, d *depTree) *depTree {
	raw := d.raw()
	sum := rawSum(raw)
	if b, ok := built[id]; ok && b.sum != 0 && b.sum == sum {
		b.version = d.version()
		return d.seal(b)
	}
	dep, err := buildDeployment(l, id, raw)
	return d.seal(builtDep{version: d.version(), dep: dep, err: err, sum: sum})
}

// logInvalid logs each invalid part once, when its error first appears or
// changes, and when it is valid again.
func (r *run) logInvalid(invalid map[string]string) {
	if len(invalid) == 0 && len(r.logged) == 0 {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(invalid)) {
		if r.logged[k] != invalid[k] {
			r.log.Warn("invalid znode; keeping its last good version", "key", k, "error", invalid[k])
			r.logged[k] = invalid[k]
		}
	}
	for k := range r.logged {
		if _, ok := invalid[k]; !ok {
			r.log.Info("znode valid again", "key", k)
			delete(r.logged, k)
		}
	}
}
