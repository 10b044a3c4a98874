package allocator

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/switchyard/switchyard/allocator/registry"
)

// metrics are the allocator's Prometheus metrics (docs/reference.md).
type metrics struct {
	reg      *prometheus.Registry
	restarts prometheus.Counter
	oomKills prometheus.Counter
	failed   prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.restarts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_allocator_restarts_total", Help: "Instances restarted after they ended or failed their health check."})
	m.oomKills = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_allocator_oom_kills_total", Help: "Instances killed by the kernel for going over their memory limit."})
	m.failed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_allocator_crash_loops_total", Help: "Instances left stopped after a crash loop."})
	states := prometheus.NewDesc("switchyard_allocator_instances", "Instances by state.", []string{"state"}, nil)
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_allocator_memory_capacity_bytes", Help: "Memory the allocator offers to instances."})
	capacity.Set(float64(a.cfg.CapacityBytes))
	used := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_allocator_memory_assigned_bytes", Help: "Memory of the instances assigned and running or being started."},
		func() float64 { return float64(a.used()) })
	zkUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_allocator_zookeeper_connected", Help: "1 while the allocator has a ZooKeeper session."},
		func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.zkUp {
				return 1
			}
			return 0
		})
	m.reg.MustRegister(m.restarts, m.oomKills, m.failed, capacity, used, zkUp,
		collectorFunc{desc: states, collect: func(ch chan<- prometheus.Metric) {
			counts := map[registry.State]int{}
			for _, s := range []registry.State{registry.StateStarting, registry.StateRunning, registry.StateUnhealthy,
				registry.StateRestarting, registry.StateFailed, registry.StateStopping, registry.StateInvalid} {
				counts[s] = 0
			}
			a.mu.Lock()
			for _, st := range a.status {
				counts[st.State]++
			}
			a.mu.Unlock()
			for _, s := range slices.Sorted(maps.Keys(counts)) {
				ch <- prometheus.MustNewConstMetric(states, prometheus.GaugeValue, float64(counts[s]), string(s))
			}
		}})
	return m
}

// collectorFunc is a collector of one described metric.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// StatusDoc is the allocator's /status document.
type StatusDoc struct {
	ID            string    `json:"id"`
	Zone          string    `json:"zone"`
	StartedAt     time.Time `json:"started_at"`
	CapacityBytes int64     `json:"capacity_bytes"`
	AssignedBytes int64     `json:"assigned_bytes"`
	ZooKeeper     bool      `json:"zookeeper_connected"`
	// Cgroups says how instances are confined: "v1", "v2", or
	// "unconfined: <why>".
	Cgroups   string                       `json:"cgroups"`
	Instances []InstanceDoc                `json:"instances"`
	Settings  map[string]map[string]string `json:"cgroup_settings,omitempty"`
}

// InstanceDoc is one instance in /status.
type InstanceDoc struct {
	ID string `json:"id"`
	registry.Status
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
}

// Status is the allocator's state, as /status shows it.
func (a *Agent) Status() StatusDoc {
	doc := StatusDoc{ID: a.cfg.ID, Zone: a.cfg.Zone, StartedAt: a.started, CapacityBytes: a.cfg.CapacityBytes, AssignedBytes: a.used()}
	switch {
	case a.cg != nil && a.cg.version == 1:
		doc.Cgroups = "v1"
	case a.cg != nil:
		doc.Cgroups = "v2"
	case a.cgErr != nil:
		doc.Cgroups = "unconfined: " + a.cgErr.Error()
	default:
		doc.Cgroups = "unconfined"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	doc.ZooKeeper = a.zkUp
	for _, id := range slices.Sorted(maps.Keys(a.status)) {
		in := InstanceDoc{ID: id, Status: a.status[id]}
		if s := a.sups[id]; s != nil {
			in.MemoryBytes = s.as.MemoryBytes
			if a.cg != nil {
				if doc.Settings == nil {
					doc.Settings = map[string]map[string]string{}
				}
				doc.Settings[id] = a.cg.settings(s.cgName())
			}
		}
		doc.Instances = append(doc.Instances, in)
	}
	return doc
}

func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
	return mux
}
