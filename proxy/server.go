package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/clientconn"
	"github.com/switchyard/switchyard/proxy/internal/sockio"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/proxy/tlscert"
	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
	"github.com/valyala/fasthttp"
)

// prefetchBytes is how much of a request body is read before the handler
// runs. Bodies up to this size are held in memory (and may be replayed);
// larger ones are streamed.
const prefetchBytes = 64 << 10

// Server is a proxy: a client listener, an admin listener, the route table
// it serves, and the connection pools to instances. It implements
// routes.Sink.
type Server struct {
	cfg       Config
	log       *slog.Logger
	state     atomic.Pointer[tableState]
	transport *upstream.Transport
	alog      *accesslog.Logger
	metrics   *metrics
	ids       *requestIDs
	draining  atomic.Bool
	exPool    sync.Pool
	budget    retryBudget
	gens      genStats
	applyMu   sync.Mutex     // serializes Apply
	active    map[string]int // address -> eligible instances with it in the table served, unless the picker is an AddrIndex; Apply's
	tunnels   tunnelSet
	// progress hears of the request path's progress: the idle napper
	// when Config.IdleNap is set, else nothing.
	progress progress
	bodies   clientconn.Counts
	proxied  listen.ProxyCounts      // the PROXY protocol layer's refusals
	clients  clientconn.ListenConfig // how Run's client connections write

	// The TLS listener's, when Config.TLS.Listen is set.
	certs      *tlscert.Store
	tlsConf    *tls.Config
	tickets    *tlscert.Tickets
	handshakes listen.TLSCounts // failed handshakes
	h2         *h2FrontEnd      // the TLS listener's HTTP/2 connections
	h3         *h3FrontEnd      // HTTP/3 on the TLS listener's UDP port
	// altSvc announces HTTP/3 on TLS responses (Alt-Svc); nil without.
	altSvc []byte

	srv   *fasthttp.Server
	admin *http.Server

	ready     chan struct{}
	addr      net.Addr
	tlsAddr   net.Addr
	adminAddr net.Addr

	rejected atomic.Pointer[rejection]
}

// tableState is a route table with what the hot path derives from it.
type tableState struct {
	table  *routes.Table
	suffix []byte // "." + domain, lowercase
	// gens counts attempts per generation, for the instances of
	// multi-generation deployments of table.
	gens map[*routes.Instance]*genCounter
}

type rejection struct {
	At     time.Time
	Source string
	Error  string
}

var _ routes.Sink = (*Server)(nil)

// New builds a Server. It opens the access log but binds nothing until Run.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.IdleNap < 0 || cfg.IdleNap > MaxIdleNap {
		return nil, fmt.Errorf("proxy: idle nap %v: want 0 (off) to %v", cfg.IdleNap, MaxIdleNap)
	}
	if n := cfg.ResponseWriteSize; n < MinResponseWriteSize || n > MaxResponseWriteSize {
		return nil, fmt.Errorf("proxy: response write size %d: want %d to %d bytes", n, MinResponseWriteSize, MaxResponseWriteSize)
	}
	if n := cfg.SplicePipeSize; n > 0 && (n < MinSplicePipeSize || n > MaxSplicePipeSize) {
		return nil, fmt.Errorf("proxy: splice pipe size %d: want %d to %d bytes, or negative for none", n, MinSplicePipeSize, MaxSplicePipeSize)
	}
	switch {
	case cfg.ProxyProtocol != listen.ProxyOff && cfg.ProxyProtocol != listen.ProxyOn && cfg.ProxyProtocol != listen.ProxyOptional:
		return nil, fmt.Errorf("proxy: PROXY protocol mode %v: want off, on or optional", cfg.ProxyProtocol)
	case cfg.ProxyProtocol != listen.ProxyOff && len(cfg.ProxyProtocolFrom) == 0:
		return nil, fmt.Errorf("proxy: PROXY protocol %v: no peers to take it from (ProxyProtocolFrom)", cfg.ProxyProtocol)
	}
	if cfg.TLS.HTTP3 && cfg.TLS.Listen == "" {
		return nil, errors.New("proxy: HTTP/3 needs the TLS listener (TLS.Listen)")
	}
	certs, tlsConf, tickets, err := newTLS(cfg)
	if err != nil {
		return nil, err
	}
	alog, err := accesslog.New(cfg.AccessLog)
	if err != nil {
		return nil, fmt.Errorf("proxy: access log: %w", err)
	}
	s := &Server{
		certs:   certs,
		tlsConf: tlsConf,
		tickets: tickets,
		cfg:     cfg,
		log:     cfg.Logger,
		transport: upstream.New(upstream.Config{
			ConnectTimeout:        cfg.ConnectTimeout,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
			IdleTimeout:           cfg.UpstreamIdleTimeout,
			IdleConnTimeout:       cfg.IdleConnTimeout,
			MaxConns:              cfg.MaxConnsPerInstance,
			MaxIdleConns:          cfg.MaxIdleConnsPerInstance,
			Dial:                  cfg.Dial,
		}),
		alog:  alog,
		ids:   newRequestIDs(),
		ready: make(chan struct{}),
	}
	s.exPool.New = func() any { return new(exchange) }
	s.progress = noProgress{}
	s.budget.percent, s.budget.floor = int64(cfg.RetryBudgetPercent), int64(cfg.RetryBudgetFloor)
	s.metrics = newMetrics(s)
	s.clients = clientconn.ListenConfig{
		Name:      "http",
		WriteIdle: cfg.ClientIdleTimeout,
		CopySize:  cfg.ResponseWriteSize,
		PipeSize:  cfg.SplicePipeSize,
		Counts:    &s.bodies,
	}
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.handleParseError,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		KeepHijackedConns:     true, // upgraded connections: see tunnel
		ReadBufferSize:        cfg.MaxHeaderBytes,
		WriteBufferSize:       16 << 10,
		ReadTimeout:           cfg.ClientHeaderTimeout,
		IdleTimeout:           cfg.ClientIdleTimeout,
		// No WriteTimeout: the client connections bound a write that
		// makes no progress for ClientIdleTimeout (clientconn.Listen).
		StreamRequestBody:            true,
		MaxRequestBodySize:           prefetchBytes,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{cfg.Logger},
	}
	if tlsConf != nil || cfg.HTTP2Cleartext {
		s.h2 = newH2FrontEnd(s)
	}
	return s, nil
}

// newTLS loads the TLS listener's certificates and builds its
// configuration; all nil when cfg has no TLS listener.
func newTLS(cfg Config) (*tlscert.Store, *tls.Config, *tlscert.Tickets, error) {
	t := cfg.TLS
	if t.Listen == "" {
		return nil, nil, nil, nil
	}
	certs, err := tlscert.New(tlscert.Config{
		CertFile: t.CertFile, KeyFile: t.KeyFile, Dir: t.CertDir,
		Interval: t.ReloadInterval, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: TLS: %w", err)
	}
	conf, err := tlscert.ServerConfig(certs, tlscert.ServerOptions{ClientCA: t.ClientCA})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: TLS: %w", err)
	}
	tickets, err := tlscert.NewTickets(conf)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: TLS: %w", err)
	}
	return certs, conf, tickets, nil
}

// fasthttpLogger sends fasthttp's own messages (connection-level errors)
// to the debug log.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "fasthttp")
}

// Apply makes t the table that new requests see. When t was derived from
// the table being served (routes.Table.ChangeFrom), what it costs is the
// change's: the balancer, the per-generation counters and the instances
// taken out of service look only at the deployments it changed.
func (s *Server) Apply(t *routes.Table) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	domain := s.cfg.Domain
	if domain == "" {
		domain = t.Domain
	}
	domain = strings.TrimPrefix(strings.ToLower(domain), ".")
	var prev *routes.Table
	var prevGens map[*routes.Instance]*genCounter
	if cur := s.state.Load(); cur != nil {
		prev, prevGens = cur.table, cur.gens
	}
	ix, _ := s.cfg.Picker.(zones.AddrIndex)
	var was map[string]bool
	if ix != nil {
		was = servedBefore(ix, t.ChangeFrom(prev))
	}
	s.cfg.Picker.Prepare(t) // before any request can see t
	st := &tableState{table: t, gens: s.gens.build(t, prev, prevGens)}
	if domain != "" {
		st.suffix = []byte("." + domain)
	}
	s.state.Store(st)
	if ix != nil {
		s.retireByIndex(ix, was)
	} else {
		s.retire(t, prev)
	}
	s.metrics.reloadsApplied.Inc()
	s.metrics.tableVersion.Set(float64(t.Version))
	s.metrics.tableDeployments.Set(float64(t.Len()))
	s.log.Info("route table applied", "version", t.Version, "deployments", t.Len(), "source", t.Source, "domain", domain)
}

// servedBefore notes, for each address of an instance eligible in a
// deployment that ch removes or adds, whether ix serves it before the
// change; nil when ch is nil (a whole table).
func servedBefore(ix zones.AddrIndex, ch *routes.Change) map[string]bool {
	if ch == nil {
		return nil
	}
	was := map[string]bool{}
	for _, ds := range [2][]*routes.Deployment{ch.Removed, ch.Added} {
		for _, d := range ds {
			for _, in := range d.Eligible {
				if _, ok := was[in.Addr]; !ok {
					was[in.Addr] = ix.Serves(in.Addr)
				}
			}
		}
	}
	return was
}

// retireByIndex is retire for a picker that knows the table's addresses:
// after a change, the addresses in was whose service changed; after a
// whole table (was is nil), every address the transport has.
func (s *Server) retireByIndex(ix zones.AddrIndex, was map[string]bool) {
	s.active = nil
	if was == nil {
		s.transport.Retain(ix.Serves, s.cfg.RetireGrace)
		return
	}
	var retired, revived []string
	for addr, before := range was {
		switch now := ix.Serves(addr); {
		case before && !now:
			retired = append(retired, addr)
		case !before && now:
			revived = append(revived, addr)
		}
	}
	s.transport.Update(retired, revived, s.cfg.RetireGrace)
}

// retire takes the instances out of service that t no longer has
// eligible, and puts back those it has again: their connections close
// (Transport.Retain). The caller holds applyMu.
func (s *Server) retire(t, prev *routes.Table) {
	ch := t.ChangeFrom(prev)
	if ch == nil || s.active == nil {
		s.active = make(map[string]int, t.Len()*3)
		for d := range t.All() {
			for _, in := range d.Eligible {
				s.active[in.Addr]++
			}
		}
		s.transport.Retain(func(addr string) bool { return s.active[addr] > 0 }, s.cfg.RetireGrace)
		return
	}
	before := map[string]bool{}
	count := func(d *routes.Deployment, n int) {
		for _, in := range d.Eligible {
			if _, ok := before[in.Addr]; !ok {
				before[in.Addr] = s.active[in.Addr] > 0
			}
			if s.active[in.Addr] += n; s.active[in.Addr] <= 0 {
				delete(s.active, in.Addr)
			}
		}
	}
	for _, d := range ch.Removed {
		count(d, -1)
	}
	for _, d := range ch.Added {
		count(d, +1)
	}
	var retired, revived []string
	for addr, was := range before {
		switch now := s.active[addr] > 0; {
		case was && !now:
			retired = append(retired, addr)
		case !was && now:
			revived = append(revived, addr)
		}
	}
	s.transport.Update(retired, revived, s.cfg.RetireGrace)
}

// Reject records a table load that was refused; the current table stays.
func (s *Server) Reject(source string, err error) {
	s.metrics.reloadsRejected.Inc()
	s.rejected.Store(&rejection{At: time.Now(), Source: source, Error: err.Error()})
}

// Table returns the table being served, or nil before the first Apply.
func (s *Server) Table() *routes.Table {
	if st := s.state.Load(); st != nil {
		return st.table
	}
	return nil
}

// Ready is closed once the listeners are bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the client listener's address; valid after Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// TLSAddr is the TLS client listener's address (nil without one); valid
// after Ready.
func (s *Server) TLSAddr() net.Addr { return s.tlsAddr }

// HTTP3Addr is the HTTP/3 (QUIC, UDP) listener's address (nil without
// one); valid after Ready.
func (s *Server) HTTP3Addr() net.Addr {
	if s.h3 == nil {
		return nil
	}
	return s.h3.pc.LocalAddr()
}

// ReloadTLS reads the TLS listener's certificate files again now (as it
// does by itself when they change): new handshakes use what loads, and a
// pair that does not load is logged, counted, and leaves its name's old
// certificate serving. It does nothing without a TLS listener.
func (s *Server) ReloadTLS() {
	if s.certs != nil {
		s.certs.Reload()
	}
}

// RotateTicketKeys replaces the session ticket key now (as it is every
// Config.TLS.TicketRotation): tickets of the key it replaces still
// resume, older ones do not. It does nothing without a TLS listener.
func (s *Server) RotateTicketKeys() error {
	if s.tickets == nil {
		return nil
	}
	return s.tickets.Rotate()
}

// AdminAddr is the admin listener's address (nil when disabled); valid
// after Ready.
func (s *Server) AdminAddr() net.Addr { return s.adminAddr }

// ReopenAccessLog closes and reopens the access log file, for log
// rotation: lines queued before the call go to the old file, later ones to
// a file created at the configured path. If the path cannot be opened the
// log keeps going to the old file and the error is returned. It does
// nothing when the access log is stdout or off.
func (s *Server) ReopenAccessLog() error { return s.alog.Reopen() }

// Run listens on Config.Listen and serves (Serve).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.alog.Close()
		s.transport.Close()
		return fmt.Errorf("proxy: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves clients from ln, which it closes, until ctx ends, then
// drains and returns nil. With Config.TLS.Listen it binds the TLS
// listener too and serves both, and drains both. It returns an error at
// once when the admin or TLS listener cannot be bound or a listener
// fails. ln may be any listener (tests and benchmarks hand it their
// own); TCP connections get the client connections' write and splice
// handling (clientconn). A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.alog.Close()
	defer s.transport.Close()
	var err error
	var aln, tln net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{ln, aln, tln} {
			if l != nil {
				l.Close()
			}
		}
	}
	if s.cfg.AdminListen != "-" {
		if aln, err = net.Listen("tcp", s.cfg.AdminListen); err != nil {
			closeAll()
			return fmt.Errorf("proxy: admin listen: %w", err)
		}
		s.adminAddr = aln.Addr()
	}
	if s.tlsConf != nil {
		if tln, err = net.Listen("tcp", s.cfg.TLS.Listen); err != nil {
			closeAll()
			return fmt.Errorf("proxy: TLS listen: %w", err)
		}
		s.tlsAddr = tln.Addr()
		if s.cfg.TLS.HTTP3 {
			if s.h3, err = newH3FrontEnd(s, tln.Addr().(*net.TCPAddr)); err != nil {
				closeAll()
				return err
			}
			s.altSvc = s.h3.altSvc
		}
	}
	s.addr = ln.Addr()
	errc := make(chan error, 4)
	if s.cfg.IdleNap > 0 {
		n, err := newIdleNapper(s.cfg.IdleNap)
		if err != nil {
			closeAll()
			return err
		}
		s.progress = n
		go n.run()
		defer func() {
			n.close()
			s.log.Debug("idle naps", "naps", n.naps.Load(), "parks", n.parks.Load(), "slacks", n.slacks.Load())
		}()
	}
	go func() {
		// The listener stack: TCP connections get the client connection
		// handling, every connection its record, and the PROXY protocol
		// layer (when on) the client's address in it; with cleartext
		// HTTP/2 on, connections that start with its preface go to the
		// h2 front end.
		errc <- s.srv.Serve(listen.Stack(ln, s.tcpLayer(s.clients.Name), listen.Named(s.clients.Name), s.proxyLayer(), s.h2cLayer()))
	}()
	if tln != nil {
		// The same stack with TLS on top: the handshake, off the accept
		// loop, records the TLS state; the request path is the same.
		// Connections that negotiate HTTP/2 go to the h2 front end
		// (s.h2), the others to fasthttp.
		go func() {
			errc <- s.srv.Serve(listen.Stack(tln, s.tcpLayer(tlsListenerName), listen.Named(tlsListenerName), s.proxyLayer(), s.tlsLayer()))
		}()
		if s.h3 != nil {
			go func() {
				if err := s.h3.serve(); err != nil {
					errc <- fmt.Errorf("HTTP/3: %w", err)
				}
			}()
		}
		stopTLS := make(chan struct{})
		defer close(stopTLS)
		go s.certs.Run(stopTLS)
		go s.tickets.Run(s.cfg.TLS.TicketRotation, stopTLS)
	}
	if aln != nil {
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := s.admin.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if cr := s.cfg.Checker; cr != nil {
		cctx, stopChecks := context.WithCancel(ctx)
		defer stopChecks()
		go func() {
			if err := cr.RunChecks(cctx); err != nil && cctx.Err() == nil {
				s.log.Error("active health checks stopped", "error", err)
			}
		}()
	}
	close(s.ready)
	s.log.Info("proxy listening", "listen", s.addr.String(), "tls_listen", addrString(s.tlsAddr), "http3_listen", addrString(s.HTTP3Addr()), "admin", addrString(s.adminAddr))
	if n := s.cfg.SplicePipeSize; n > 0 {
		if err := sockio.TryPipeSize(n); err != nil {
			s.log.Warn("pipes of --splice-pipe-size are refused: long response bodies will be copied, not spliced",
				"splice_pipe_size", n, "error", err)
		}
	}

	select {
	case err := <-errc:
		s.shutdownNow()
		return fmt.Errorf("proxy: serve: %w", err)
	case <-ctx.Done():
	}

	// Drain: health says 502 at once and responses close their
	// connections, the listener keeps accepting so load balancers notice,
	// then it closes and running requests finish.
	s.draining.Store(true)
	s.log.Info("draining", "drain_delay", s.cfg.DrainDelay.String(), "shutdown_timeout", s.cfg.ShutdownTimeout.String())
	select {
	case <-time.After(s.cfg.DrainDelay):
	case err := <-errc:
		s.shutdownNow()
		return fmt.Errorf("proxy: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		if s.h2 != nil {
			s.h2.shutdown(sctx) // GOAWAY, then running requests finish
		}
	}()
	h3done := make(chan struct{})
	go func() {
		defer close(h3done)
		if s.h3 != nil {
			s.h3.shutdown(sctx) // the same for HTTP/3
		}
	}()
	if err := s.srv.ShutdownWithContext(sctx); err != nil {
		s.log.Warn("shutdown deadline passed; cutting remaining connections", "error", err)
	}
	<-h2done
	<-h3done
	if n := s.tunnels.drain(sctx); n > 0 {
		s.log.Warn("shutdown deadline passed; cutting upgraded connections", "count", n)
	}
	if s.admin != nil {
		_ = s.admin.Shutdown(sctx)
	}
	s.log.Info("stopped")
	return nil
}

// tlsListenerName is the TLS client listener's name (listen.Info); the
// plain one's is s.clients.Name.
const tlsListenerName = "https"

// tcpLayer is the TCP layer of the listener stack (clientconn), for the
// listener name.
func (s *Server) tcpLayer(name string) listen.Layer {
	cfg := s.clients
	cfg.Name = name
	return func(ln net.Listener) net.Listener { return clientconn.Listen(ln, cfg) }
}

// tlsLayer is the TLS layer of the listener stack: the handshake within
// the client header timeout.
func (s *Server) tlsLayer() listen.Layer {
	return listen.TLS(listen.TLSConfig{
		Config:              s.tlsConf,
		Timeout:             s.cfg.ClientHeaderTimeout,
		Counts:              &s.handshakes,
		NoCertificate:       tlscert.ErrNoCertificate,
		NoClientCertificate: tlscert.ErrNoClientCertificate,
		H2:                  s.h2.serve,
	})
}

// h2cLayer is the plain listener's cleartext HTTP/2 layer; it passes
// connections through untouched unless Config.HTTP2Cleartext is on.
func (s *Server) h2cLayer() listen.Layer {
	cfg := listen.H2CConfig{Timeout: s.cfg.ClientHeaderTimeout}
	if s.cfg.HTTP2Cleartext {
		cfg.H2 = s.h2.serve
	}
	return listen.H2C(cfg)
}

// proxyLayer is the PROXY protocol layer of the listener stack; it
// passes connections through untouched when Config.ProxyProtocol is off.
func (s *Server) proxyLayer() listen.Layer {
	return listen.ProxyProtocol(listen.ProxyConfig{
		Mode:    s.cfg.ProxyProtocol,
		From:    s.cfg.ProxyProtocolFrom,
		Timeout: s.cfg.ClientHeaderTimeout,
		Counts:  &s.proxied,
	})
}

func (s *Server) shutdownNow() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.ShutdownWithContext(ctx)
	if s.h2 != nil {
		s.h2.closeAll()
	}
	if s.h3 != nil {
		s.h3.close()
	}
	cut, cancelCut := context.WithCancel(context.Background())
	cancelCut()
	s.tunnels.drain(cut)
	if s.admin != nil {
		_ = s.admin.Close()
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
