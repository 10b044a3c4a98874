package proxy

import (
	"context"
	"log"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// h2MaxReadFrameSize is the largest frame an HTTP/2 client may send: four
// times the protocol's smallest, so that a frame costs the server little
// to buffer.
const h2MaxReadFrameSize = 64 << 10

// h2FrontEnd serves the TLS listener's HTTP/2 connections (ALPN "h2")
// with golang.org/x/net/http2 over the net/http front end
// (Server.HTTPHandler): the same request path as the fasthttp listener's.
// The TLS layer hands it each connection after the handshake
// (listen.TLSConfig.H2); the connection keeps its record, and its
// RemoteAddr and TLS state become the requests' RemoteAddr and TLS.
type h2FrontEnd struct {
	hs      *http.Server // the base configuration; never serves itself
	h2      *http2.Server
	handler http.Handler
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newH2FrontEnd(s *Server) *h2FrontEnd {
	cfg := s.cfg
	hs := &http.Server{
		MaxHeaderBytes: cfg.MaxHeaderBytes, // SETTINGS_MAX_HEADER_LIST_SIZE, and the HPACK bound
		IdleTimeout:    cfg.ClientIdleTimeout,
		ErrorLog:       log.New(slogWriter{s}, "", 0),
	}
	h2 := &http2.Server{
		MaxConcurrentStreams: uint32(cfg.MaxConcurrentStreams),
		MaxReadFrameSize:     h2MaxReadFrameSize,
		IdleTimeout:          cfg.ClientIdleTimeout,
	}
	// Registers h2's graceful shutdown (GOAWAY) with hs.Shutdown.
	if err := http2.ConfigureServer(hs, h2); err != nil {
		panic(err) // hs has no TLS configuration of its own to refuse
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &h2FrontEnd{hs: hs, h2: h2, handler: s.HTTPHandler(), ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{})}
}

// serve serves c, an HTTP/2 connection after its handshake, until it
// ends.
func (f *h2FrontEnd) serve(c net.Conn) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		c.Close()
		return
	}
	f.conns[c] = struct{}{}
	f.wg.Add(1)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		f.wg.Done()
	}()
	f.h2.ServeConn(c, &http2.ServeConnOpts{Context: withConnInfo(f.ctx, c), BaseConfig: f.hs, Handler: f.handler})
}

// shutdown sends every connection a GOAWAY, lets the requests running
// finish until ctx ends, then closes what is left. Connections handed in
// later are closed at once.
func (f *h2FrontEnd) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	_ = f.hs.Shutdown(ctx) // runs h2's graceful shutdown: GOAWAY
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		f.closeAll()
		<-done
	}
}

// closeAll closes every connection now.
func (f *h2FrontEnd) closeAll() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
}

// slogWriter sends net/http's and x/net/http2's own messages
// (connection-level errors) to the debug log.
type slogWriter struct{ s *Server }

func (w slogWriter) Write(p []byte) (int, error) {
	w.s.log.Debug(string(trimNewline(p)), "component", "http2")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
