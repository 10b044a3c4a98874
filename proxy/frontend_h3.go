package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// quicBufferBytes is the UDP socket buffer size quic-go asks for (its
// desiredReceiveBufferSize): less, and bursts of packets are dropped at
// high rates.
const quicBufferBytes = 7 << 20

// h3FrontEnd serves HTTP/3 over QUIC (github.com/quic-go/quic-go) on the
// UDP port of the TLS listener's address, with the TLS listener's
// certificates, session tickets and client verification, through the
// net/http front end (Server.HTTPHandler): the same request path as
// every other client's.
type h3FrontEnd struct {
	srv *http3.Server
	pc  *net.UDPConn
	// altSvc is the Alt-Svc value that announces it: h3=":PORT".
	altSvc []byte
}

// newH3FrontEnd binds the UDP socket of addr (the TLS listener's) and
// prepares the server; serve starts it.
func newH3FrontEnd(s *Server, addr *net.TCPAddr) (*h3FrontEnd, error) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: addr.IP, Port: addr.Port, Zone: addr.Zone})
	if err != nil {
		return nil, fmt.Errorf("proxy: HTTP/3 listen: %w", err)
	}
	sizeQUICBuffers(s, pc, quicBufferBytes)
	// The proxy reports a small UDP buffer itself, as one structured
	// line; quic-go's own warning (a plain log line, read from the
	// environment when it wraps the socket) is turned off, unless the
	// operator set the variable. Only a proxy that serves HTTP/3 does so.
	if _, set := os.LookupEnv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"); !set {
		os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}
	cfg := s.cfg
	live := s.tlsConf
	srv := &http3.Server{
		// Each handshake takes the TLS listener's configuration as it is
		// then (http3 adapts a copy: ALPN h3), so certificate reloads and
		// ticket key rotations reach QUIC as they reach TLS.
		TLSConfig: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return live, nil },
		},
		QUICConfig: &quic.Config{
			MaxIncomingStreams:    int64(cfg.MaxConcurrentStreams),
			MaxIncomingUniStreams: 8, // control and QPACK streams; no push
			HandshakeIdleTimeout:  cfg.ClientHeaderTimeout,
			MaxIdleTimeout:        cfg.ClientIdleTimeout,
			Allow0RTT:             false, // 0-RTT requests can be replayed
		},
		Handler:        s.HTTPHandler(),
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		IdleTimeout:    cfg.ClientIdleTimeout,
		Logger:         s.log.With("component", "http3"),
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	return &h3FrontEnd{srv: srv, pc: pc, altSvc: []byte(`h3=":` + strconv.Itoa(port) + `"; ma=86400`)}, nil
}

// serve serves until shutdown or close; it returns nil then.
func (f *h3FrontEnd) serve() error {
	err := f.srv.Serve(f.pc)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// shutdown sends every connection a GOAWAY and lets running requests
// finish until ctx ends, then closes what is left.
func (f *h3FrontEnd) shutdown(ctx context.Context) {
	_ = f.srv.Shutdown(ctx)
	_ = f.pc.Close()
}

// close closes every connection and the socket now.
func (f *h3FrontEnd) close() {
	_ = f.srv.Close()
	_ = f.pc.Close()
}

// forceSockBuffers is forceBuffers; tests replace it, to see what an
// unprivileged proxy does.
var forceSockBuffers = forceBuffers

// sizeQUICBuffers raises pc's receive and send buffers to want (what
// QUIC wants): within net.core.rmem_max and wmem_max, or past them as
// root (SO_RCVBUFFORCE). When the kernel gives less it says so, in one
// line with the sysctl that fixes it, and reports false.
func sizeQUICBuffers(s *Server, pc *net.UDPConn, want int) bool {
	rc, err := pc.SyscallConn()
	if err != nil {
		return false
	}
	get := func(opt int) int {
		var v int
		_ = rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt) })
		return v / 2 // the kernel reports twice what was set (its bookkeeping)
	}
	_ = pc.SetReadBuffer(want)
	_ = pc.SetWriteBuffer(want)
	forceSockBuffers(rc, want)
	r, w := get(syscall.SO_RCVBUF), get(syscall.SO_SNDBUF)
	if r >= want && w >= want {
		return true
	}
	s.log.Warn("HTTP/3: the UDP socket buffers are smaller than QUIC wants; at high rates packets are dropped. "+
		"Raise the limits: sysctl -w net.core.rmem_max="+strconv.Itoa(want)+" net.core.wmem_max="+strconv.Itoa(want),
		"receive_kib", r>>10, "send_kib", w>>10, "want_kib", want>>10)
	return false
}
