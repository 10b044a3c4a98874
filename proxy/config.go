package proxy

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/clientconn"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/proxy/tlscert"
	"github.com/switchyard/switchyard/zones"
)

// Config configures a Server. The zero value of every field selects the
// default named in its comment.
type Config struct {
	// Listen is the client listener address. Default 127.0.0.1:9200.
	Listen string
	// AdminListen serves /metrics, /status and /_health. Default
	// 127.0.0.1:9244; "-" disables it.
	AdminListen string
	// Domain is the suffix of Host route keys (<key>.<domain>). Empty means
	// the domain that the route table names.
	Domain string
	// Zone is the availability zone this proxy runs in (informational until
	// zone-aware balancing).
	Zone string

	// TrustedProxies lists the peers whose X-Forwarded-For is kept and
	// appended to; from any other peer the header is replaced.
	TrustedProxies []netip.Prefix

	// ProxyProtocol says whether the client listener takes PROXY protocol
	// headers (v1, v2) from the load balancers in ProxyProtocolFrom, whose
	// address then becomes the client's (traffic filter, access log,
	// X-Forwarded-For): listen.ProxyOff (the default), listen.ProxyOn
	// (required from those peers, every other peer refused) or
	// listen.ProxyOptional (taken when sent; other peers are direct). The
	// header must arrive within ClientHeaderTimeout.
	ProxyProtocol listen.ProxyMode
	// ProxyProtocolFrom lists the peers whose PROXY protocol headers are
	// honoured; required unless ProxyProtocol is off.
	ProxyProtocolFrom []netip.Prefix

	// TLS configures the TLS client listener; off while TLS.Listen is
	// empty.
	TLS TLSConfig

	// ClientHeaderTimeout bounds reading a request's headers (slowloris).
	// Default 10s.
	ClientHeaderTimeout time.Duration
	// ClientIdleTimeout bounds the wait for the next request on a
	// keep-alive client connection, and each read or write of a body once it
	// has started. Default 60s.
	ClientIdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; larger requests get
	// 431. Default 16 KiB.
	MaxHeaderBytes int
	// HTTP2Cleartext serves HTTP/2 with prior knowledge (h2c, no
	// Upgrade) on the plain listener, beside HTTP/1.1: a connection that
	// starts with HTTP/2's preface is HTTP/2.
	HTTP2Cleartext bool
	// MaxConcurrentStreams bounds the concurrent streams (requests) of an
	// HTTP/2 or HTTP/3 client connection. Default 250.
	MaxConcurrentStreams int
	// MaxBodyBytes bounds request bodies; larger get 413. 0: no limit.
	MaxBodyBytes int64
	// ResponseWriteSize is the largest write of a streamed response body
	// to a client, and the buffer each such response holds while it
	// streams. MinResponseWriteSize to MaxResponseWriteSize; default
	// 128 KiB (clientconn.DefaultCopySize).
	ResponseWriteSize int
	// SplicePipeSize is the size of the pipes through which a response
	// body with a Content-Length, or one that runs to the end of the
	// connection, is spliced from the instance's socket to the client's
	// (zero-copy; chunked bodies are copied). MinSplicePipeSize to
	// MaxSplicePipeSize; 0: 1 MiB (clientconn.DefaultPipeSize); negative:
	// no splicing, every body is copied through memory.
	SplicePipeSize int

	// ConnectTimeout bounds dialing an instance. Default 5s.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an instance's response
	// headers once the request is sent. Default 60s.
	ResponseHeaderTimeout time.Duration
	// UpstreamIdleTimeout bounds each read or write of a body to or from an
	// instance. Default 60s.
	UpstreamIdleTimeout time.Duration
	// MaxConnsPerInstance bounds connections to one instance; a request
	// waits up to ConnectTimeout for one to free up, then gets 503.
	// Default 512.
	MaxConnsPerInstance int
	// MaxIdleConnsPerInstance bounds the keep-alive pool of one instance.
	// Default 64.
	MaxIdleConnsPerInstance int
	// IdleConnTimeout closes pooled connections unused this long. Default 30s.
	IdleConnTimeout time.Duration

	// RetireGrace is how long a request still streaming from an instance
	// that left service (weight moved off its generation, maintenance,
	// zone down, removed) may go on before its connection is cut. Idle
	// connections to such an instance close at once, busy ones when
	// their request ends. Default 30s.
	RetireGrace time.Duration

	// IdleNap, when above 0, turns on idle naps: while under load the
	// proxy handles requests in small batches, it sleeps this long
	// between them instead of blocking in epoll_wait, so that the next
	// requests arrive without a wake-up from another CPU (see
	// idlenap.go). Meant for a proxy on one CPU (GOMAXPROCS=1). At most
	// MaxIdleNap. Default 0: off.
	IdleNap time.Duration

	// TunnelIdleTimeout ends an upgraded connection (WebSocket) when no
	// byte has passed either way for this long. Default 1h; negative:
	// never.
	TunnelIdleTimeout time.Duration

	// RetryBudgetPercent bounds retries in flight to this share of the
	// requests in flight. Default 20.
	RetryBudgetPercent int
	// RetryBudgetFloor lets this many retries be in flight whatever the
	// share. Default 10: the budget is the whole proxy's, and at the end of
	// a wave of timeouts (a stalled zone) few requests are in flight
	// besides the retries themselves.
	RetryBudgetFloor int

	// DrainDelay is how long the listener keeps accepting after SIGTERM
	// while /_health says 502, so load balancers notice. Default 5s.
	DrainDelay time.Duration
	// ShutdownTimeout bounds how long running requests and upgraded
	// connections may finish after the listener closes; those left are
	// then cut. Default 30s.
	ShutdownTimeout time.Duration

	// AccessLog configures the access log; the zero value logs every
	// request to stdout.
	AccessLog accesslog.Config
	// DeploymentMetrics adds a deployment label to request metrics.
	DeploymentMetrics bool

	// SourceStatus, when set, reports the route source's state (route
	// server connection, staleness) under "source" in /status.
	SourceStatus func() any

	// Dial opens connections to instances; default TCP with
	// ConnectTimeout. Tests and benchmarks set it to reach in-memory
	// instances.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)

	// Picker chooses instances. Default zones.Weighted.
	Picker zones.Picker
	// Checker, when not nil, runs background health checks while the
	// proxy serves (usually the Picker too).
	Checker zones.Checker
	// Reporter, when not nil, gives the balancer's counters to /metrics
	// and its state to /status (usually the Picker too).
	Reporter zones.Reporter
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxConcurrentStreams is Config.MaxConcurrentStreams' default.
const DefaultMaxConcurrentStreams = 250

// TLSConfig configures the TLS client listener: it serves the same
// request path as the plain one, over TLS (docs/edge.md, "TLS").
type TLSConfig struct {
	// Listen is the TLS listener's address; empty: no TLS listener.
	Listen string
	// CertFile and KeyFile are a PEM pair, the default certificate;
	// CertDir holds more pairs, NAME.crt and NAME.key, chosen by SNI
	// (tlscert.Config). At least one of them with Listen.
	CertFile, KeyFile string
	CertDir           string
	// ReloadInterval is how often the certificate files are checked for
	// changes. Default 5s (tlscert.DefaultInterval).
	ReloadInterval time.Duration
	// ClientCA, when set, is a PEM bundle of CAs: every client must
	// present a certificate that verifies against it.
	ClientCA string
	// TicketRotation is how often the session ticket key is replaced;
	// tickets of the previous key still resume. Default 24h.
	TicketRotation time.Duration
	// HTTP3 serves HTTP/3 over QUIC on the UDP port of Listen's address,
	// with the same certificates, and announces it (Alt-Svc) on the
	// responses of the TLS listener.
	HTTP3 bool
}

// Bounds of Config.ResponseWriteSize.
const (
	MinResponseWriteSize = 4 << 10
	MaxResponseWriteSize = 16 << 20
)

// Bounds of Config.SplicePipeSize, when positive.
const (
	MinSplicePipeSize = 4 << 10
	MaxSplicePipeSize = 16 << 20
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9200"
	}
	if c.AdminListen == "" {
		c.AdminListen = "127.0.0.1:9244"
	}
	def(&c.ClientHeaderTimeout, 10*time.Second)
	def(&c.ClientIdleTimeout, 60*time.Second)
	def(&c.ConnectTimeout, 5*time.Second)
	def(&c.ResponseHeaderTimeout, 60*time.Second)
	def(&c.UpstreamIdleTimeout, 60*time.Second)
	def(&c.IdleConnTimeout, 30*time.Second)
	def(&c.DrainDelay, 5*time.Second)
	def(&c.RetireGrace, 30*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	def(&c.TLS.TicketRotation, tlscert.DefaultTicketRotation)
	if c.TunnelIdleTimeout == 0 {
		c.TunnelIdleTimeout = time.Hour
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.MaxConcurrentStreams <= 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.ResponseWriteSize <= 0 {
		c.ResponseWriteSize = clientconn.DefaultCopySize
	}
	if c.SplicePipeSize == 0 {
		c.SplicePipeSize = clientconn.DefaultPipeSize
	}
	if c.MaxConnsPerInstance <= 0 {
		c.MaxConnsPerInstance = 512
	}
	if c.MaxIdleConnsPerInstance <= 0 {
		c.MaxIdleConnsPerInstance = 64
	}
	if c.RetryBudgetPercent <= 0 {
		c.RetryBudgetPercent = 20
	}
	if c.RetryBudgetFloor <= 0 {
		c.RetryBudgetFloor = 10
	}
	if c.Picker == nil {
		c.Picker = zones.Weighted{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
