package routeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"golang.org/x/sync/singleflight"
)

// Config configures a Server. Zero values select the defaults named.
type Config struct {
	// Name identifies this route server in status output. Default: the
	// host name.
	Name string
	// Listen is the HTTP address. Default 127.0.0.1:9280.
	Listen string
	// MaxWait bounds how long a long poll is held. Default 30s.
	MaxWait time.Duration
	// History is how many recent tables are kept to compute deltas from.
	// Default 64. The history holds what each table changed, not the
	// tables: it is also bounded to as many changed deployments, in all,
	// as the current table has (older entries are dropped first), so it
	// never costs more than about one table.
	History int
	// CacheBytes bounds the cache of encoded messages. Default 64 MiB.
	CacheBytes int64
	// TableHash is how tables are hashed (wire.HashScheme). The zero
	// value, wire.HashSHA256, is what every proxy checks; wire.HashSum
	// costs only what changed, and needs proxies that check it.
	TableHash wire.HashScheme
	// ProxyTTL is how long a proxy that stopped asking is still listed.
	// Default 2m.
	ProxyTTL time.Duration
	// MaxProxies bounds the proxies (and, separately, the reports) kept
	// for /status; beyond it a new proxy ID is served but not recorded,
	// and counted. Default 10 000.
	MaxProxies int
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9280"
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 30 * time.Second
	}
	if c.History <= 0 {
		c.History = 64
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 64 << 20
	}
	if c.ProxyTTL <= 0 {
		c.ProxyTTL = 2 * time.Minute
	}
	if c.MaxProxies <= 0 {
		c.MaxProxies = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Input is one table from the store, as its watcher publishes it.
type Input struct {
	Version     uint64
	Domain      string
	Zones       map[string]routes.ZoneState
	Deployments map[string]*routes.DeploymentSpec // the valid (or last good) ones; ignored when Set is set
	Invalid     map[string]string                 // deployment id -> why its latest znode was refused
	Stale       bool                              // the watcher lost the store
	Synced      bool                              // the watcher completed a full read

	// Set, when not nil, holds the deployments in place of Deployments:
	// an immutable version of a persistent map, which the server reads
	// without copying.
	Set *Deployments
	// Base and Changed say what differs from an earlier Input: Changed
	// holds the IDs whose entry differs between the Set of that Input,
	// Base, and Set. When the server's table was built from Base, it
	// builds the next from Changed alone, at the cost of the change (with
	// the sum table hash); otherwise it compares every deployment.
	Base    *Deployments
	Changed []string
}

// Deployments is a version of a persistent map of the deployments by ID,
// as a store watcher keeps them.
type Deployments = cowmap.Map[string, *routes.DeploymentSpec]

// entry is one published table of the history: its identity, and what
// it changed from the entry before it. Only the current table is held
// whole (Server.snap); a delta from an older entry is composed from the
// changes after it.
type entry struct {
	version     uint64
	hash        string
	publishedAt time.Time
	change      *wire.Change // from the entry before; nil for the oldest
}

// Server serves route tables to proxies. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time // the clock of LastSeen, reports and lag: time.Now, a fake in tests

	mu      sync.Mutex
	history []*entry       // oldest first; last is current
	snap    *wire.Snapshot // the current table
	from    *Deployments   // the Input.Set snap was built from, if any
	held    int            // deployments in the changes of history[1:]
	stale   bool
	invalid map[string]string
	changed chan struct{} // closed and replaced when the table or staleness changes
	proxies map[string]*proxyState
	reports map[string]*reportState // by proxy ID
	swept   time.Time               // when expired proxies and reports were last dropped

	encodes singleflight.Group
	cache   *ristretto.Cache[string, []byte]
	metrics *metrics

	httpSrv *http.Server
	ready   chan struct{}
	addr    net.Addr
}

type proxyState struct {
	ID       string
	Zone     string
	Addr     string
	Version  uint64
	Hash     string
	LastSeen time.Time
}

// New builds a Server; Run serves it.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	cache, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: 10_000,
		MaxCost:     cfg.CacheBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("routeserver: cache: %w", err)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, now: time.Now, cache: cache,
		changed: make(chan struct{}),
		proxies: map[string]*proxyState{},
		reports: map[string]*reportState{},
		ready:   make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	return s, nil
}

// Update publishes a table from the store. A table with the same content
// as the current one only updates staleness; an empty table before any
// good one is ignored, and an empty table afterwards is refused (the last
// good table keeps serving).
func (s *Server) Update(in Input) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalid = in.Invalid
	cur := s.snap
	n := len(in.Deployments)
	if in.Set != nil {
		n = in.Set.Len()
	}
	if !in.Synced || n == 0 {
		if in.Synced && cur != nil {
			s.log.Error("store has no deployments; keeping the last good table", "version", cur.Version)
		}
		s.setStaleLocked(in.Stale || cur == nil)
		return
	}
	snap := s.nextLocked(in)
	s.from = in.Set
	if cur != nil && cur.Hash == snap.Hash {
		s.setStaleLocked(in.Stale)
		return
	}
	if cur != nil && snap.Version <= cur.Version {
		// Content changed without a higher zxid: keep versions increasing.
		s.log.Warn("table content changed without a newer version", "version", snap.Version, "current", cur.Version)
		snap.Version = cur.Version + 1
	}
	s.snap = snap
	s.pushLocked(&entry{version: snap.Version, hash: snap.Hash, publishedAt: s.now(), change: snap.Change()}, snap.Len())
	s.stale = in.Stale
	s.metrics.version.Set(float64(snap.Version))
	s.metrics.deployments.Set(float64(snap.Len()))
	s.metrics.stale.Set(boolFloat(s.stale))
	s.log.Info("table published", "version", snap.Version, "deployments", snap.Len(), "hash", snap.Hash[:12], "stale", in.Stale)
	s.broadcastLocked()
}

// nextLocked builds the snapshot of in from the current one: from the
// changed deployments alone when the current snapshot was built from
// in.Base, else by comparing every deployment.
func (s *Server) nextLocked(in Input) *wire.Snapshot {
	cur := s.snap
	switch {
	case in.Set == nil:
		return wire.NewHashedSnapshot(s.cfg.TableHash, cur, in.Version, in.Domain, in.Zones, in.Deployments)
	case cur != nil && in.Base != nil && in.Base == s.from:
		changes := make(map[string]*routes.DeploymentSpec, len(in.Changed))
		for _, id := range in.Changed {
			d, _ := in.Set.Get(id)
			changes[id] = d // nil: removed
		}
		return wire.NextSnapshot(s.cfg.TableHash, cur, in.Version, in.Domain, in.Zones, changes)
	}
	deps := make(map[string]*routes.DeploymentSpec, in.Set.Len())
	for id, d := range in.Set.All() {
		deps[id] = d
	}
	return wire.NewHashedSnapshot(s.cfg.TableHash, cur, in.Version, in.Domain, in.Zones, deps)
}

// pushLocked appends e to the history and drops the oldest entries beyond
// History, or while the changes held add up to more deployments than the
// current table's n (a proxy that far behind gets the full table, which
// is then no larger than the delta would be).
func (s *Server) pushLocked(e *entry, n int) {
	if len(s.history) == 0 {
		e.change = nil
	}
	s.history = append(s.history, e)
	s.held += e.change.Len()
	drop := 0
	for len(s.history)-drop > 1 && (len(s.history)-drop > s.cfg.History || s.held > max(n, 1)) {
		drop++
		s.held -= s.history[drop].change.Len()
	}
	if drop > 0 {
		h := append(s.history[:0:0], s.history[drop:]...)
		// The oldest entry is only a base: what it changed is not needed.
		h[0] = &entry{version: h[0].version, hash: h[0].hash, publishedAt: h[0].publishedAt}
		s.history = h
	}
}

func (s *Server) setStaleLocked(stale bool) {
	if s.stale == stale {
		return
	}
	s.stale = stale
	s.metrics.stale.Set(boolFloat(stale))
	s.log.Info("staleness changed", "stale", stale)
	s.broadcastLocked()
}

func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// since finds the history entry with version and hash and returns the
// changes from it to the current table, oldest first; ok is false when
// the entry is no longer held.
func (s *Server) since(version uint64, hash string) (changes []*wire.Change, ok bool) {
	for i := len(s.history) - 1; i >= 0; i-- {
		if e := s.history[i]; e.version == version && e.hash == hash {
			changes = make([]*wire.Change, 0, len(s.history)-1-i)
			for _, e := range s.history[i+1:] {
				if e.change == nil {
					return nil, false
				}
				changes = append(changes, e.change)
			}
			return changes, true
		}
	}
	return nil, false
}

// base is a table a proxy holds, with the changes from it to the
// current table.
type baseTable struct {
	version uint64
	hash    string
	changes []*wire.Change
}

// message returns the encoded answer for a proxy at base (nil: not held)
// given the current table: a delta when base is known, else the full
// table.
func (s *Server) message(base *baseTable, cur *wire.Snapshot, stale bool) ([]byte, bool, error) {
	key := "full:" + strconv.FormatUint(cur.Version, 10) + ":" + cur.Hash + ":" + strconv.FormatBool(stale)
	if base != nil {
		key = "delta:" + strconv.FormatUint(base.version, 10) + ":" + base.hash[:min(16, len(base.hash))] + ">" + key
	}
	if b, ok := s.cache.Get(key); ok {
		s.metrics.cacheHits.Inc()
		return b, base != nil, nil
	}
	v, err, _ := s.encodes.Do(key, func() (any, error) {
		if b, ok := s.cache.Get(key); ok {
			return b, nil
		}
		s.metrics.encodes.Inc()
		var b []byte
		if base != nil {
			var ok bool
			if b, ok = cur.DeltaOver(base.version, base.hash, base.changes, stale); !ok {
				return nil, errNoDelta
			}
		} else {
			b = cur.Full(stale)
		}
		// Set is asynchronous and may be refused: Wait flushes it so that
		// requests arriving right after this one find it; a refused or
		// evicted entry is only computed again.
		s.cache.Set(key, b, int64(len(b)))
		s.cache.Wait()
		return b, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.([]byte), base != nil, nil
}

// Ready is closed once the listener is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address; valid after Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Handler returns the HTTP handler (also used by Run).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathRoutes, s.handleRoutes)
	mux.HandleFunc("POST "+wire.PathReport, s.handleReport)
	mux.HandleFunc("GET "+wire.PathStatus, s.handleStatus)
	mux.HandleFunc("GET "+wire.PathHealth, s.handleHealth)
	mux.Handle("GET "+wire.PathMetrics, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("routeserver: listen: %w", err)
	}
	s.addr = ln.Addr()
	s.httpSrv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	close(s.ready)
	errc := make(chan error, 1)
	go func() { errc <- s.httpSrv.Serve(ln) }()
	s.log.Info("route server listening", "listen", s.addr.String(), "name", s.cfg.Name)
	select {
	case err := <-errc:
		return fmt.Errorf("routeserver: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Held long polls end at once: wake them, then shut down.
	s.mu.Lock()
	s.broadcastLocked()
	s.mu.Unlock()
	_ = s.httpSrv.Shutdown(sctx)
	s.cache.Close()
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeJSONError answers with the proxy's JSON error shape.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": msg})
}

var (
	errNoTable = errors.New("routeserver: no table yet")
	errNoDelta = errors.New("routeserver: a change of the history is missing")
)
