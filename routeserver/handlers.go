package routeserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard/switchyard/routes/wire"
)

func (s *Server) handleRoutes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var have uint64
	if v := q.Get(wire.ParamVersion); v != "" {
		var err error
		if have, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeJSONError(w, http.StatusBadRequest, wire.ParamVersion+": not an unsigned integer")
			return
		}
	}
	hash := q.Get(wire.ParamHash)
	// heard is the staleness the proxy last heard; when it differs from
	// the server's, a poll at the current table is answered at once, so a
	// change of staleness between two polls is not held until wait passes.
	var heard, heardSet bool
	if v := q.Get(wire.ParamStale); v != "" {
		var err error
		if heard, err = strconv.ParseBool(v); err != nil {
			writeJSONError(w, http.StatusBadRequest, wire.ParamStale+": not true or false")
			return
		}
		heardSet = true
	}
	wait := s.cfg.MaxWait
	if v := q.Get(wire.ParamWait); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeJSONError(w, http.StatusBadRequest, wire.ParamWait+": not a duration")
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	s.seen(r, have, hash)
	s.metrics.requests.Inc()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	woken := false
	for {
		s.mu.Lock()
		cur, stale, changed := s.snap, s.stale, s.changed
		var base *baseTable
		if cur != nil && (cur.Version != have || cur.Hash != hash) {
			if changes, ok := s.since(have, hash); ok {
				base = &baseTable{version: have, hash: hash, changes: changes}
			}
		}
		s.mu.Unlock()
		if cur == nil {
			writeJSONError(w, http.StatusServiceUnavailable, errNoTable.Error())
			return
		}
		w.Header().Set(wire.HeaderVersion, strconv.FormatUint(cur.Version, 10))
		w.Header().Set(wire.HeaderStale, strconv.FormatBool(stale))
		if cur.Version != have || cur.Hash != hash {
			body, delta, err := s.message(base, cur, stale)
			if err != nil {
				writeJSONError(w, http.StatusInternalServerError, err.Error())
				return
			}
			if delta {
				s.metrics.deltas.Inc()
			} else {
				s.metrics.fulls.Inc()
			}
			s.metrics.bytes.Add(float64(len(body)))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
			return
		}
		if woken || (heardSet && heard != stale) {
			// Only the staleness changed: tell the proxy now.
			w.WriteHeader(http.StatusNotModified)
			return
		}
		select {
		case <-changed:
			woken = true
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// maxReportBytes bounds a proxy's report.
const maxReportBytes = 4 << 20

type reportState wire.ProxyReport

// handleReport takes a proxy's per-generation counts (wire.Report).
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	var rep wire.Report
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		writeJSONError(w, http.StatusBadRequest, "report: "+err.Error())
		return
	}
	if rep.Proxy == "" {
		writeJSONError(w, http.StatusBadRequest, "report: proxy: missing")
		return
	}
	for i, g := range rep.Generations {
		if g.Deployment == "" || g.Generation == "" || g.Errors > g.Requests {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("report: generations[%d]: want deployment, generation and errors <= requests", i))
			return
		}
	}
	now := s.now()
	s.mu.Lock()
	if _, known := s.reports[rep.Proxy]; !known && !s.admitLocked(func() int { return len(s.reports) }, now) {
		s.mu.Unlock()
		s.metrics.untracked.WithLabelValues("report").Inc()
		writeJSONError(w, http.StatusServiceUnavailable, fmt.Sprintf("report: %d proxies reporting already; not recorded", s.cfg.MaxProxies))
		return
	}
	s.reports[rep.Proxy] = &reportState{Proxy: rep.Proxy, Zone: rep.Zone, ReportedAt: now, Generations: rep.Generations}
	s.mu.Unlock()
	s.metrics.reports.Inc()
	w.WriteHeader(http.StatusNoContent)
}

// seen records what a proxy has applied.
func (s *Server) seen(r *http.Request, version uint64, hash string) {
	id := r.Header.Get(wire.HeaderProxy)
	if id == "" {
		id = r.RemoteAddr
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[id]
	if p == nil {
		if !s.admitLocked(func() int { return len(s.proxies) }, now) {
			s.metrics.untracked.WithLabelValues("poll").Inc()
			return
		}
		p = &proxyState{ID: id}
		s.proxies[id] = p
	}
	p.Zone, p.Addr, p.Version, p.Hash, p.LastSeen = r.Header.Get(wire.HeaderZone), r.RemoteAddr, version, hash, now
}

// admitLocked reports whether a new proxy may be recorded in the map
// whose size is given: expired proxies and reports are dropped first, at
// most every ProxyTTL/8 (so the maps hold what came within about
// ProxyTTL, whether or not anyone reads /status), and at MaxProxies no
// more are added.
func (s *Server) admitLocked(size func() int, now time.Time) bool {
	if now.Sub(s.swept) >= s.cfg.ProxyTTL/8 {
		s.sweepLocked(now)
	}
	return size() < s.cfg.MaxProxies
}

// sweepLocked drops the proxies and reports not heard from within
// ProxyTTL.
func (s *Server) sweepLocked(now time.Time) {
	s.swept = now
	for id, p := range s.proxies {
		if now.Sub(p.LastSeen) > s.cfg.ProxyTTL {
			delete(s.proxies, id)
		}
	}
	for id, r := range s.reports {
		if now.Sub(r.ReportedAt) > s.cfg.ProxyTTL {
			delete(s.reports, id)
		}
	}
}

// Status reports the server's table and the proxies it has heard from
// within ProxyTTL.
func (s *Server) Status() wire.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := wire.Status{Name: s.cfg.Name, Stale: s.stale, Invalid: s.invalid, Proxies: []wire.ProxyStatus{}}
	cur := s.snap
	if cur != nil {
		st.Version, st.Hash, st.Deployments = cur.Version, cur.Hash, cur.Len()
	}
	now := s.now()
	s.sweepLocked(now)
	for _, p := range s.proxies {
		ps := wire.ProxyStatus{ID: p.ID, Zone: p.Zone, Addr: p.Addr, Version: p.Version, LastSeen: p.LastSeen}
		if cur != nil {
			ps.Current = p.Version == cur.Version && p.Hash == cur.Hash
			if !ps.Current {
				ps.LagSeconds = now.Sub(s.supersededAt(p.Version)).Seconds()
			}
		}
		st.Proxies = append(st.Proxies, ps)
	}
	sort.Slice(st.Proxies, func(i, j int) bool { return st.Proxies[i].ID < st.Proxies[j].ID })
	for _, r := range s.reports {
		if len(r.Generations) > 0 {
			st.Reports = append(st.Reports, wire.ProxyReport(*r))
		}
	}
	sort.Slice(st.Reports, func(i, j int) bool { return st.Reports[i].Proxy < st.Reports[j].Proxy })
	return st
}

// supersededAt is when the first table newer than version was published
// (the oldest held entry when version predates the history).
func (s *Server) supersededAt(version uint64) time.Time {
	for _, e := range s.history {
		if e.version > version {
			return e.publishedAt
		}
	}
	return s.now()
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Status())
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	ok := s.snap != nil
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"ok":false,"status":502}`))
		return
	}
	_, _ = w.Write([]byte(`{"ok":true,"status":200}`))
}

type metrics struct {
	reg         *prometheus.Registry
	version     prometheus.Gauge
	deployments prometheus.Gauge
	stale       prometheus.Gauge
	requests    prometheus.Counter
	fulls       prometheus.Counter
	deltas      prometheus.Counter
	bytes       prometheus.Counter
	encodes     prometheus.Counter
	cacheHits   prometheus.Counter
	reports     prometheus.Counter
	untracked   *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	g := func(name, help string) prometheus.Gauge {
		v := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.reg.MustRegister(v)
		return v
	}
	c := func(name, help string) prometheus.Counter {
		v := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(v)
		return v
	}
	m.version = g("switchyard_routeserver_table_version", "Version of the table being served.")
	m.deployments = g("switchyard_routeserver_table_deployments", "Deployments in the table being served.")
	m.stale = g("switchyard_routeserver_stale", "1 when the store is lost and the last table is served.")
	m.requests = c("switchyard_routeserver_requests_total", "Route stream requests.")
	m.fulls = c("switchyard_routeserver_full_tables_total", "Full tables sent.")
	m.deltas = c("switchyard_routeserver_deltas_total", "Deltas sent.")
	m.bytes = c("switchyard_routeserver_sent_bytes_total", "Bytes of tables and deltas sent.")
	m.encodes = c("switchyard_routeserver_encodes_total", "Messages encoded (cache misses).")
	m.reports = c("switchyard_routeserver_reports_total", "Per-generation reports received from proxies.")
	m.cacheHits = c("switchyard_routeserver_cache_hits_total", "Messages served from the encoded-message cache.")
	m.untracked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_routeserver_untracked_total",
		Help: "Polls (what=poll) and reports (what=report) from new proxy IDs not recorded because MaxProxies were already tracked.",
	}, []string{"what"})
	m.reg.MustRegister(m.untracked)
	proxies := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_routeserver_proxies", Help: "Proxies heard from within the proxy TTL.",
	}, func() float64 { return float64(len(s.Status().Proxies)) })
	m.reg.MustRegister(proxies)
	return m
}
