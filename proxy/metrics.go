package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/proxy/tlscert"
	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/switchyard/switchyard/zones"
)

// metrics are the proxy's Prometheus metrics, in a registry of its own.
// Label values are resolved once, so that recording allocates nothing,
// except per-deployment labels, which are opt-in.
type metrics struct {
	reg *prometheus.Registry

	requests             [numProtocols][6]prometheus.Counter // by protocol, then status class: 1xx..5xx; [0] other
	requestsByDep        *prometheus.CounterVec
	duration             prometheus.Histogram
	upstreamDuration     prometheus.Histogram
	upstreamErrors       []prometheus.Counter // by upstream.Kind
	inFlight             prometheus.Gauge
	tunnels              prometheus.Gauge
	retries              prometheus.Counter
	forbidden            prometheus.Counter
	retryBudgetExhausted prometheus.Counter
	reloadsApplied       prometheus.Counter
	reloadsRejected      prometheus.Counter
	tableVersion         prometheus.Gauge
	tableDeployments     prometheus.Gauge
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_requests_total",
		Help: "Requests answered, by status class (2xx, 4xx, ...) and the client's protocol.",
	}, []string{"code_class", "protocol"})
	m.reg.MustRegister(reqs)
	for p := range numProtocols {
		m.requests[p][0] = reqs.WithLabelValues("other", p.String())
		for i := 1; i <= 5; i++ {
			m.requests[p][i] = reqs.WithLabelValues(strconv.Itoa(i)+"xx", p.String())
		}
	}
	if s.cfg.DeploymentMetrics {
		m.requestsByDep = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_deployment_requests_total",
			Help: "Requests answered, by deployment and status class.",
		}, []string{"deployment", "code_class"})
		m.reg.MustRegister(m.requestsByDep)
	}
	buckets := prometheus.ExponentialBuckets(0.00025, 2, 18) // 250µs .. ~33s
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchyard_request_duration_seconds",
		Help:    "Time from request arrival until the response, body included, was written.",
		Buckets: buckets,
	})
	m.upstreamDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchyard_upstream_response_seconds",
		Help:    "Time from the request sent to an instance until its response headers arrived.",
		Buckets: buckets,
	})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_upstream_errors_total",
		Help: "Failed exchanges with instances, by kind.",
	}, []string{"kind"})
	for _, k := range upstream.Kinds() {
		m.upstreamErrors = append(m.upstreamErrors, errs.WithLabelValues(k.String()))
	}
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_retries_total",
		Help: "Requests sent again to another instance after a failed exchange.",
	})
	m.retryBudgetExhausted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_retry_budget_exhausted_total",
		Help: "Retries not made because the retry budget was used up.",
	})
	m.forbidden = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_forbidden_total",
		Help: "Requests refused with 403 because the client address is outside the deployment's traffic filter.",
	})
	m.reg.MustRegister(m.retries, m.retryBudgetExhausted, m.forbidden)
	m.tunnels = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_upgraded_connections",
		Help: "Client connections upgraded (101 Switching Protocols) and tunneled to an instance.",
	})
	m.reg.MustRegister(m.tunnels)
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_requests_in_flight",
		Help: "Requests being handled.",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_route_table_loads_total",
		Help: "Route table loads, by result (applied, rejected).",
	}, []string{"result"})
	m.reloadsApplied = reloads.WithLabelValues("applied")
	m.reloadsRejected = reloads.WithLabelValues("rejected")
	m.tableVersion = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_route_table_version",
		Help: "Version of the route table being served.",
	})
	m.tableDeployments = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_route_table_deployments",
		Help: "Deployments in the route table being served.",
	})
	bodies := func(via string, n *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "switchyard_response_bodies_streamed_total",
			Help:        "Response bodies too long to fit beside their headers in the client write buffer, by how the rest was moved to the client: spliced (zero-copy) or copied through memory.",
			ConstLabels: prometheus.Labels{"via": via},
		}, func() float64 { return float64(n.Load()) })
	}
	m.reg.MustRegister(bodies("splice", &s.bodies.Spliced), bodies("copy", &s.bodies.Copied),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "switchyard_splice_pipe_failures_total",
			Help: "Response bodies copied instead of spliced because no pipe could be had (out of descriptors, or the pipe size refused: fs.pipe-max-size, fs.pipe-user-pages-soft).",
		}, func() float64 { return float64(s.bodies.NoPipe.Load()) }))
	for _, r := range listen.Refusals() {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "switchyard_proxy_protocol_refused_total",
			Help:        "Client connections closed by the PROXY protocol layer before any request, by reason: unlisted_peer, missing (no header), invalid, timeout, closed (by the peer).",
			ConstLabels: prometheus.Labels{"reason": r.String()},
		}, func() float64 { return float64(s.proxied.Refused(r)) }))
	}
	if s.certs != nil {
		registerTLS(m.reg, s)
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_route_table_age_seconds",
		Help: "Time since the route table being served was loaded.",
	}, func() float64 {
		if st := s.state.Load(); st != nil {
			return time.Since(st.table.LoadedAt).Seconds()
		}
		return 0
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_access_log_dropped_total",
		Help: "Access log lines dropped because the log writer fell behind.",
	}, func() float64 { return float64(s.alog.Dropped()) })
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_upstream_connections",
		Help: "Open connections to instances.",
	}, func() float64 { return float64(s.transport.Stats("").Open) })
	idle := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_upstream_idle_connections",
		Help: "Idle pooled connections to instances.",
	}, func() float64 { return float64(s.transport.Stats("").Idle) })
	stale := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_upstream_stale_connections_total",
		Help: "Pooled connections found holding unasked bytes or closed when taken, and closed unused.",
	}, func() float64 { return float64(s.transport.Stats("").Stale) })
	if b := s.cfg.Reporter; b != nil {
		stat := func(name, help string, f func(zones.Stats) uint64) {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
				func() float64 { return float64(f(b.Stats())) }))
		}
		stat("switchyard_ejections_total", "Instances ejected by outlier detection.", func(s zones.Stats) uint64 { return s.Ejections })
		stat("switchyard_ejections_skipped_total", "Ejections skipped because too many instances were out.", func(s zones.Stats) uint64 { return s.EjectionsSkipped })
		stat("switchyard_panic_picks_total", "Picks made in panic mode (too few healthy instances).", func(s zones.Stats) uint64 { return s.PanicPicks })
		stat("switchyard_health_checks_total", "Active health checks made.", func(s zones.Stats) uint64 { return s.Checks })
		stat("switchyard_health_check_failures_total", "Active health checks failed.", func(s zones.Stats) uint64 { return s.CheckFailures })
	}
	m.reg.MustRegister(m.duration, m.upstreamDuration, errs, m.inFlight, reloads,
		m.tableVersion, m.tableDeployments, age, dropped, open, idle, stale)
	return m
}

// observe records one finished request.
func (m *metrics) observe(status int, proto protocol, deployment string, total time.Duration) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.requests[proto][class].Inc()
	if m.requestsByDep != nil && deployment != "" {
		label := "other"
		if class > 0 {
			label = strconv.Itoa(class) + "xx"
		}
		m.requestsByDep.WithLabelValues(deployment, label).Inc()
	}
	m.duration.Observe(total.Seconds())
}

// registerTLS registers the TLS listener's metrics.
func registerTLS(reg *prometheus.Registry, s *Server) {
	for _, f := range listen.HandshakeFailures() {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "switchyard_tls_handshake_errors_total",
			Help:        "TLS handshakes that failed, by reason: no_certificate (no certificate for the server name and no default), client_certificate (missing or not verified), timeout, other (no common version or suite, malformed, closed).",
			ConstLabels: prometheus.Labels{"reason": f.String()},
		}, func() float64 { return float64(s.handshakes.Failed(f)) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_tls_reload_errors_total",
		Help: "TLS certificate pairs refused on reload (unreadable, not PEM, key not matching the certificate); the old certificate of the name keeps serving.",
	}, func() float64 { return float64(s.certs.ReloadErrors()) }), certExpiry{s.certs})
}

// certExpiry is the gauge of each TLS certificate's expiry, one series
// per certificate name, as the certificates in use have them.
type certExpiry struct{ certs *tlscert.Store }

var certExpiryDesc = prometheus.NewDesc("switchyard_tls_certificate_expiry_seconds",
	"Expiry (NotAfter) of each TLS certificate in use, by name, as Unix seconds.", []string{"name"}, nil)

func (c certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c certExpiry) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.certs.Expiries() {
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(e.NotAfter.Unix()), e.Name)
	}
}
