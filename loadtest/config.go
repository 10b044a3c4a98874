package loadtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults for the zero values of Config.
const (
	DefaultConnections = 10
	DefaultTimeout     = 10 * time.Second
	DefaultKeyHeader   = "X-Found-Cluster"
)

// Config describes one run. Only URL is required; the zero value of every
// other field is documented and usable. The generator does not modify the
// Config nor anything it points to.
type Config struct {
	// URL is the target: http:// or https://, with path and query.
	URL string
	// Method is the request method. "" means GET.
	Method string
	// Header holds headers sent with every request. nil means none.
	Header http.Header
	// Host is the Host header. "" means Header["Host"] if set, else the
	// host of URL.
	Host string
	// Body is sent with every request. nil means no body. PatternBody makes
	// one of a given size.
	Body []byte

	// Keys are route keys. Each request picks one uniformly at random and
	// sends it in KeyHeader, or in the Host header with HostTemplate. Empty
	// means no key.
	Keys []string
	// KeyHeader is the header that carries the key. "" means
	// X-Found-Cluster. Unused with HostTemplate.
	KeyHeader string
	// HostTemplate makes the Host header of each request from its key:
	// every "{key}" is replaced, e.g. "{key}.example.test". "" means keys go
	// in KeyHeader. It needs Keys, and wins over Host.
	HostTemplate string

	// Connections is the number of connections, each with at most one
	// request in flight. 0 means DefaultConnections.
	Connections int
	// Rate is the open-loop rate in requests per second over all
	// connections. 0 means a closed loop.
	Rate float64
	// Duration bounds the run in time. 0 means no time bound.
	Duration time.Duration
	// Requests bounds the run in requests. 0 means no count bound. With
	// neither bound the run lasts until its context is done or Stop.
	Requests int64
	// Timeout bounds each request, counted as its latency is (see
	// Result.Latency). 0 means DefaultTimeout.
	Timeout time.Duration
	// TLSConfig is used for https URLs. nil means the default: system
	// roots, server name from URL. Its NextProtos are replaced by the
	// protocol's ALPN name.
	TLSConfig *tls.Config

	// Protocol is the HTTP version spoken: HTTP1 (""), HTTP2 (over TLS,
	// ALPN h2) or HTTP3 (over QUIC). HTTP2 and HTTP3 need an https URL.
	Protocol string
	// Streams is, with HTTP2 and HTTP3, the number of requests in flight
	// on each connection, each waiting for its response before it sends
	// the next: Connections × Streams in all. 0 means 1. HTTP1 sends one
	// request at a time per connection and takes only 0 or 1.
	Streams int

	// OnResponse, when not nil, is called after every request that was
	// sent and finished, with a response or an error; not for requests
	// given up unsent, nor those cut short by Stop. It is called
	// concurrently from every connection, so it must be safe for that and
	// cheap: it runs on the request path. The Result is valid only during
	// the call.
	OnResponse func(r *Result)
}

// Protocols of Config.Protocol.
const (
	HTTP1 = ""   // HTTP/1.1 over TCP, or TLS for https
	HTTP2 = "h2" // HTTP/2 over TLS (golang.org/x/net/http2)
	HTTP3 = "h3" // HTTP/3 over QUIC (github.com/quic-go/quic-go/http3)
)

// Result is one finished request, as Config.OnResponse sees it. It and the
// slices it returns are reused after the call returns: copy what you keep.
type Result struct {
	// Seq is the request's index in the run, from 0.
	Seq int64
	// Key is the route key sent, "" without Config.Keys.
	Key string
	// Status is the response status, 0 when Err is set.
	Status int
	// Err is why no response arrived, nil when one did.
	Err error
	// Kind is the error kind (KindRefused, ...), "" when a response arrived.
	Kind string
	// Latency runs to the end of the response or the error: from the
	// intended send time when the request had to wait for a connection (an
	// open loop with every connection busy), else from when it was sent.
	Latency time.Duration

	resp  *fasthttp.Response // HTTP1
	hresp *http.Response     // HTTP2, HTTP3
}

// Header returns the value of the response header name, or nil when there
// is none or no response arrived. The slice is valid only during the call.
func (r *Result) Header(name string) []byte {
	switch {
	case r.Err != nil:
		return nil
	case r.hresp != nil:
		if v := r.hresp.Header.Get(name); v != "" {
			return []byte(v)
		}
		return nil
	case r.resp != nil:
		return r.resp.Header.Peek(name)
	}
	return nil
}

// Error kinds: the keys of Report.Errors.
const (
	KindRefused = "refused" // connection refused
	KindTimeout = "timeout" // no response within Config.Timeout
	KindReset   = "reset"   // connection reset or closed before a full response
	KindOther   = "other"   // anything else: DNS, TLS, malformed response, ...
)

var kinds = [...]string{KindRefused, KindTimeout, KindReset, KindOther}

// ConfigError reports an invalid Config field. Start returns it before
// anything runs.
type ConfigError struct {
	Field string // Config field name, e.g. "Rate"
	Msg   string
}

func (e *ConfigError) Error() string { return "loadtest: Config." + e.Field + ": " + e.Msg }

func configErr(field, format string, a ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// PatternBody returns n deterministic bytes: "0123456789abcdef" repeated.
func PatternBody(n int) []byte {
	const pattern = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
	return b
}

// plan is a validated Config with its zero values resolved and the per-run
// values derived from it.
type plan struct {
	Config
	addr       string // host:port to dial
	tls        *tls.Config
	requestURI string
	hostHeader string
	method     string
	idempotent bool
	keyHeader  []byte   // canonical
	keys       [][]byte // the keys, as sent in keyHeader
	hosts      [][]byte // Host per key with HostTemplate
	limit      int64    // first request index not to send
	interval   float64  // open loop: seconds between intended sends
	streams    int      // requests in flight per connection
}

func newPlan(cfg Config) (*plan, error) {
	p := &plan{Config: cfg}
	if cfg.URL == "" {
		return nil, configErr("URL", "required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, configErr("URL", "invalid URL %q", cfg.URL)
	}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		p.tls = cfg.TLSConfig
		if p.tls == nil {
			p.tls = &tls.Config{}
		}
		if p.tls.ServerName == "" {
			p.tls = p.tls.Clone()
			p.tls.ServerName = u.Hostname()
		}
	default:
		return nil, configErr("URL", "scheme of %q is not http or https", cfg.URL)
	}
	if u.Hostname() == "" {
		return nil, configErr("URL", "no host in %q", cfg.URL)
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	p.requestURI = u.RequestURI()
	p.hostHeader = u.Host
	if h := cfg.Header.Get("Host"); h != "" {
		p.hostHeader = h
	}
	if cfg.Host != "" {
		p.hostHeader = cfg.Host
	}

	p.method = strings.ToUpper(cfg.Method)
	if p.method == "" {
		p.method = http.MethodGet
	}
	if !validToken(p.method) {
		return nil, configErr("Method", "invalid method %q", cfg.Method)
	}
	switch p.method {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE":
		p.idempotent = true
	}
	for k := range cfg.Header {
		if !validToken(k) {
			return nil, configErr("Header", "invalid header name %q", k)
		}
	}

	if cfg.HostTemplate != "" {
		if !strings.Contains(cfg.HostTemplate, "{key}") {
			return nil, configErr("HostTemplate", "%q has no {key}", cfg.HostTemplate)
		}
		if len(cfg.Keys) == 0 {
			return nil, configErr("HostTemplate", "needs Keys")
		}
	}
	kh := cfg.KeyHeader
	if kh == "" {
		kh = DefaultKeyHeader
	}
	if !validToken(kh) {
		return nil, configErr("KeyHeader", "invalid header name %q", kh)
	}
	p.keyHeader = []byte(http.CanonicalHeaderKey(kh))
	for i, k := range cfg.Keys {
		if k == "" || strings.ContainsAny(k, " \t\r\n") {
			return nil, configErr("Keys", "key %d (%q) is empty or has a space", i, k)
		}
		p.keys = append(p.keys, []byte(k))
		if cfg.HostTemplate != "" {
			p.hosts = append(p.hosts, []byte(strings.ReplaceAll(cfg.HostTemplate, "{key}", k)))
		}
	}

	switch cfg.Protocol {
	case HTTP1, HTTP2, HTTP3:
	default:
		return nil, configErr("Protocol", "unknown protocol %q (want %q, %q or %q)", cfg.Protocol, HTTP1, HTTP2, HTTP3)
	}
	if cfg.Protocol != HTTP1 && p.tls == nil {
		return nil, configErr("Protocol", "%s needs an https URL", cfg.Protocol)
	}
	if cfg.Streams < 0 {
		return nil, configErr("Streams", "%d is negative", cfg.Streams)
	}
	if cfg.Streams > 1 && cfg.Protocol == HTTP1 {
		return nil, configErr("Streams", "%d: HTTP/1.1 has one request in flight per connection", cfg.Streams)
	}
	p.streams = max(1, cfg.Streams)
	if cfg.Connections < 0 {
		return nil, configErr("Connections", "%d is negative", cfg.Connections)
	}
	if p.Connections == 0 {
		p.Connections = DefaultConnections
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, configErr("Rate", "%v is not a positive number", cfg.Rate)
	}
	if cfg.Duration < 0 {
		return nil, configErr("Duration", "%v is negative", cfg.Duration)
	}
	if cfg.Requests < 0 {
		return nil, configErr("Requests", "%d is negative", cfg.Requests)
	}
	if cfg.Timeout < 0 {
		return nil, configErr("Timeout", "%v is negative", cfg.Timeout)
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultTimeout
	}

	p.limit = math.MaxInt64
	if cfg.Requests > 0 {
		p.limit = cfg.Requests
	}
	if cfg.Rate > 0 {
		p.interval = 1 / cfg.Rate
		if cfg.Duration > 0 {
			// Slots whose intended time falls inside the duration.
			p.limit = min(p.limit, int64(math.Ceil(cfg.Duration.Seconds()*cfg.Rate)))
		}
	}
	return p, nil
}

// validToken reports whether s is an HTTP token (method, header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// errAborted marks a request cut short by Stop or the run's context.
var errAborted = errors.New("loadtest: run stopped")
