package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is the admin listener's /status document.
type Status struct {
	OK       bool         `json:"ok"`
	Draining bool         `json:"draining"`
	Zone     string       `json:"zone,omitempty"`
	Table    *TableStatus `json:"table"`
	// LastRejected is the most recent table load that was refused.
	LastRejected *RejectStatus     `json:"last_rejected,omitempty"`
	Zones        map[string]string `json:"zones,omitempty"`
	Source       any               `json:"source,omitempty"`
	// Balancer is the picker's own status (zones, instance health), when
	// it has one.
	Balancer  any             `json:"balancer,omitempty"`
	Upstream  UpstreamStatus  `json:"upstream"`
	AccessLog AccessLogStatus `json:"access_log"`
}

// TableStatus describes the route table being served.
type TableStatus struct {
	Version     uint64    `json:"version"`
	Source      string    `json:"source"`
	LoadedAt    time.Time `json:"loaded_at"`
	AgeSeconds  float64   `json:"age_seconds"`
	Domain      string    `json:"domain"`
	Deployments int       `json:"deployments"`
}

// RejectStatus describes a refused table load.
type RejectStatus struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Error  string    `json:"error"`
}

// UpstreamStatus counts connections to instances.
type UpstreamStatus struct {
	Open  int    `json:"open_connections"`
	Idle  int    `json:"idle_connections"`
	Dials uint64 `json:"dials"`
}

// AccessLogStatus counts access log lines.
type AccessLogStatus struct {
	Written uint64 `json:"written"`
	Dropped uint64 `json:"dropped"`
}

// Status reports the proxy's state, as /status shows it.
func (s *Server) Status() Status {
	st := Status{Draining: s.draining.Load(), Zone: s.cfg.Zone}
	if ts := s.state.Load(); ts != nil {
		t := ts.table
		domain := ""
		if len(ts.suffix) > 1 {
			domain = string(ts.suffix[1:])
		}
		st.Table = &TableStatus{
			Version: t.Version, Source: t.Source, LoadedAt: t.LoadedAt,
			AgeSeconds: time.Since(t.LoadedAt).Seconds(), Domain: domain, Deployments: t.Len(),
		}
		st.Zones = map[string]string{}
		for _, d := range t.Deployments {
			for _, in := range d.Instances {
				st.Zones[in.Zone] = t.Zones[in.Zone].String()
			}
		}
		for z, state := range t.Zones {
			st.Zones[z] = state.String()
		}
	}
	st.OK = st.Table != nil && !st.Draining
	if r := s.cfg.Reporter; r != nil {
		st.Balancer = r.Status()
	}
	if s.cfg.SourceStatus != nil {
		st.Source = s.cfg.SourceStatus()
	}
	if r := s.rejected.Load(); r != nil {
		st.LastRejected = &RejectStatus{At: r.At, Source: r.Source, Error: r.Error}
	}
	us := s.transport.Stats("")
	st.Upstream = UpstreamStatus{Open: us.Open, Idle: us.Idle, Dials: us.Dials}
	st.AccessLog = AccessLogStatus{Written: s.alog.Written(), Dropped: s.alog.Dropped()}
	return st
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	// Profiling, for the admin listener only (loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Status())
	})
	mux.HandleFunc("/_health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if s.state.Load() == nil || s.draining.Load() {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write(healthDown)
			return
		}
		_, _ = w.Write(healthOK)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		paths := []string{"/_health", "/metrics", "/status", "/debug/pprof/"}
		sort.Strings(paths)
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": "Unknown resource.", "paths": paths})
	})
	return mux
}
