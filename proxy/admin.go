package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/switchyard/switchyard/routes"
)

// Status is the admin listener's /status document: a summary of the
// proxy and its table, and the deployments of one page (StatusQuery).
// Its size and cost follow the page, not the table.
type Status struct {
	OK       bool         `json:"ok"`
	Draining bool         `json:"draining"`
	Zone     string       `json:"zone,omitempty"`
	Table    *TableStatus `json:"table"`
	// LastRejected is the most recent table load that was refused.
	LastRejected *RejectStatus `json:"last_rejected,omitempty"`
	// Zones are the table's zones and their state as the table says:
	// those it lists, those of the balancer (every zone with an
	// instance) and those of the page's instances.
	Zones  map[string]string `json:"zones,omitempty"`
	Source any               `json:"source,omitempty"`
	// Balancer is the picker's own status (zones, unhealthy deployments,
	// the health of the page's instances), when it has one.
	Balancer  any             `json:"balancer,omitempty"`
	Upstream  UpstreamStatus  `json:"upstream"`
	AccessLog AccessLogStatus `json:"access_log"`
	// Deployments are the page's deployments, by ID, as the table has
	// them.
	Deployments []*routes.DeploymentSpec `json:"deployments"`
	// Next, when more deployments follow the page, is the After of the
	// next page.
	Next string `json:"next,omitempty"`
}

// StatusQuery selects the deployments that /status details.
type StatusQuery struct {
	// Deployment, when set, is the one deployment to detail: its ID or
	// "<alias>.<kind>" (case-insensitive).
	Deployment string
	// After starts the page at the first deployment whose ID sorts
	// after it; "" starts at the first.
	After string
	// Limit is the page's size: 0 is DefaultStatusLimit, more than
	// MaxStatusLimit is MaxStatusLimit.
	Limit int
}

// The page sizes of /status.
const (
	DefaultStatusLimit = 50
	MaxStatusLimit     = 1000
)

// ErrUnknownDeployment is a StatusQuery's Deployment that the table does
// not have.
var ErrUnknownDeployment = errors.New("proxy: unknown deployment")

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

// Status reports the proxy's state with the first page of deployments,
// as /status shows it.
func (s *Server) Status() Status {
	st, _ := s.StatusOf(StatusQuery{})
	return st
}

// StatusOf reports the proxy's state with the deployments q selects, as
// /status?deployment=&after=&limit= shows it. A q.Deployment the table
// does not have is ErrUnknownDeployment (the summary is still filled).
func (s *Server) StatusOf(q StatusQuery) (Status, error) {
	st := Status{Draining: s.draining.Load(), Zone: s.cfg.Zone, Deployments: []*routes.DeploymentSpec{}}
	var page []*routes.Deployment
	var err error
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
		page, st.Next, err = pageOf(t, q)
		st.Zones = map[string]string{}
		for _, d := range page {
			st.Deployments = append(st.Deployments, &d.DeploymentSpec)
			for _, in := range d.Instances {
				st.Zones[in.Zone] = t.Zones[in.Zone].String()
			}
		}
		for z, state := range t.Zones {
			st.Zones[z] = state.String()
		}
		if r := s.cfg.Reporter; r != nil {
			bs := r.Status(page)
			for _, z := range bs.Zones {
				st.Zones[z.Name] = t.Zones[z.Name].String()
			}
			st.Balancer = bs
		}
	} else if q.Deployment != "" {
		err = fmt.Errorf("%w: %s: no table yet", ErrUnknownDeployment, q.Deployment)
	}
	st.OK = st.Table != nil && !st.Draining
	if s.cfg.SourceStatus != nil {
		st.Source = s.cfg.SourceStatus()
	}
	if r := s.rejected.Load(); r != nil {
		st.LastRejected = &RejectStatus{At: r.At, Source: r.Source, Error: r.Error}
	}
	us := s.transport.Stats("")
	st.Upstream = UpstreamStatus{Open: us.Open, Idle: us.Idle, Dials: us.Dials}
	st.AccessLog = AccessLogStatus{Written: s.alog.Written(), Dropped: s.alog.Dropped()}
	return st, err
}

// pageOf returns the deployments of t that q selects, and the After of
// the next page ("" when none follow). A page costs a binary search and
// its own length (routes.Table.After).
func pageOf(t *routes.Table, q StatusQuery) ([]*routes.Deployment, string, error) {
	if q.Deployment != "" {
		d := t.Lookup([]byte(strings.ToLower(q.Deployment)))
		if d == nil {
			return nil, "", fmt.Errorf("%w: %s", ErrUnknownDeployment, q.Deployment)
		}
		return []*routes.Deployment{d}, "", nil
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultStatusLimit
	case limit > MaxStatusLimit:
		limit = MaxStatusLimit
	}
	page, more := t.After(q.After, limit)
	next := ""
	if more {
		next = page[len(page)-1].ID
	}
	return page, next, nil
}

// statusQuery reads /status's query parameters: deployment, after and
// limit.
func statusQuery(r *http.Request) (StatusQuery, error) {
	v := r.URL.Query()
	q := StatusQuery{Deployment: v.Get("deployment"), After: v.Get("after")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit: %q is not a positive integer", l)
		}
		q.Limit = n
	}
	if q.Deployment != "" && (q.After != "" || q.Limit != 0) {
		return q, errors.New("deployment: not with after or limit")
	}
	return q, nil
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
		q, err := statusQuery(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": err.Error()})
			return
		}
		st, err := s.StatusOf(q)
		if err != nil {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": err.Error()})
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
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
