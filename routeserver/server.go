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
	// Default 64.
	History int
	// CacheBytes bounds the cache of encoded messages. Default 64 MiB.
	CacheBytes int64
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
	Deployments map[string]*routes.DeploymentSpec // the valid (or last good) ones
	Invalid     map[string]string                 // deployment id -> why its latest znode was refused
	Stale       bool                              // the watcher lost the store
	Synced      bool                              // the watcher completed a full read
}

// entry is one published table.
type entry struct {
	snap        *wire.Snapshot
	publishedAt time.Time
}

// Server serves route tables to proxies. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time // the clock of LastSeen, reports and lag: time.Now, a fake in tests

	mu      sync.Mutex
	history []*entry // oldest first; last is current
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
	cur := s.current()
	if !in.Synced || len(in.Deployments) == 0 {
		if in.Synced && cur != nil {
			s.log.Error("store has no deployments; keeping the last good table", "version", cur.snap.Version)
		}
		s.setStaleLocked(in.Stale || cur == nil)
		return
	}
	var prev *wire.Snapshot
	if cur != nil {
		prev = cur.snap
	}
	snap := wire.NewSnapshot(prev, in.Version, in.Domain, in.Zones, in.Deployments)
	if cur != nil && cur.snap.Hash == snap.Hash {
		s.setStaleLocked(in.Stale)
		return
	}
	if cur != nil && snap.Version <= cur.snap.Version {
		// Content changed without a higher zxid: keep versions increasing.
		s.log.Warn("table content changed without a newer version", "version", snap.Version, "current", cur.snap.Version)
		snap.Version = cur.snap.Version + 1
	}
	s.history = append(s.history, &entry{snap: snap, publishedAt: s.now()})
	if len(s.history) > s.cfg.History {
		s.history = append(s.history[:0:0], s.history[len(s.history)-s.cfg.History:]...)
	}
	s.stale = in.Stale
	s.metrics.version.Set(float64(snap.Version))
	s.metrics.deployments.Set(float64(len(snap.IDs)))
	s.metrics.stale.Set(boolFloat(s.stale))
	s.log.Info("table published", "version", snap.Version, "deployments", len(snap.IDs), "hash", snap.Hash[:12], "stale", in.Stale)
	s.broadcastLocked()
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

func (s *Server) current() *entry {
	if n := len(s.history); n > 0 {
		return s.history[n-1]
	}
	return nil
}

// find returns the history entry with version and hash, if still held.
func (s *Server) find(version uint64, hash string) *entry {
	for i := len(s.history) - 1; i >= 0; i-- {
		if e := s.history[i]; e.snap.Version == version && e.snap.Hash == hash {
			return e
		}
	}
	return nil
}

// message returns the encoded answer for a proxy at (base) given the
// current entry: a delta when base is known, else the full table.
func (s *Server) message(base, cur *entry, stale bool) ([]byte, bool, error) {
	key := "full:" + strconv.FormatUint(cur.snap.Version, 10) + ":" + cur.snap.Hash + ":" + strconv.FormatBool(stale)
	if base != nil {
		key = "delta:" + strconv.FormatUint(base.snap.Version, 10) + ":" + base.snap.Hash[:16] + ">" + key
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
			b = cur.snap.Delta(base.snap, stale)
		} else {
			b = cur.snap.Full(stale)
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

var errNoTable = errors.New("routeserver: no table yet")
