package listen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// HandshakeFailure is why a TLS handshake failed.
type HandshakeFailure int

const (
	// FailedNoCertificate: no certificate for the client's server name,
	// and no default (Config.GetCertificate's error is
	// TLSConfig.NoCertificate).
	FailedNoCertificate HandshakeFailure = iota
	// FailedClientCertificate: client certificates are required and the
	// client sent none, or one that does not verify.
	FailedClientCertificate
	// FailedTimeout: the handshake was not done within the layer's
	// timeout.
	FailedTimeout
	// FailedOther: anything else: a protocol version or suite in common
	// with the client, a malformed hello, a connection closed or reset.
	FailedOther

	numFailures
)

// HandshakeFailures lists every HandshakeFailure.
func HandshakeFailures() []HandshakeFailure {
	r := make([]HandshakeFailure, numFailures)
	for i := range r {
		r[i] = HandshakeFailure(i)
	}
	return r
}

func (f HandshakeFailure) String() string {
	switch f {
	case FailedNoCertificate:
		return "no_certificate"
	case FailedClientCertificate:
		return "client_certificate"
	case FailedTimeout:
		return "timeout"
	case FailedOther:
		return "other"
	}
	return fmt.Sprintf("HandshakeFailure(%d)", int(f))
}

// TLSCounts counts a TLS layer's failed handshakes, by HandshakeFailure.
type TLSCounts struct {
	failed [numFailures]atomic.Uint64
}

// Failed returns the handshakes that failed for f.
func (c *TLSCounts) Failed(f HandshakeFailure) uint64 { return c.failed[f].Load() }

func (c *TLSCounts) add(f HandshakeFailure) {
	if c != nil {
		c.failed[f].Add(1)
	}
}

// DefaultHandshakeTimeout is TLSConfig.Timeout's default.
const DefaultHandshakeTimeout = 10 * time.Second

// TLSConfig configures the TLS layer.
type TLSConfig struct {
	// Config is the server's TLS configuration; required.
	Config *tls.Config
	// Timeout bounds the handshake, counted from the time the layer
	// accepted the connection. DefaultHandshakeTimeout when 0 or less.
	Timeout time.Duration
	// Counts, when not nil, counts the failed handshakes.
	Counts *TLSCounts
	// NoCertificate and NoClientCertificate are the errors with which
	// Config fails a handshake for want of a certificate for the
	// client, or of one from it: such failures are counted as
	// FailedNoCertificate and FailedClientCertificate.
	NoCertificate, NoClientCertificate error
	// H2, when not nil, serves the connections that negotiated HTTP/2
	// ("h2" by ALPN): the layer hands them to H2, on the goroutine that
	// did the handshake, instead of to Accept, which returns only the
	// others (http/1.1, or no protocol). The connection carries its
	// record (InfoOf) as the ones Accept returns do.
	H2 func(net.Conn)
}

// TLS is the TLS layer. It does each connection's handshake before the
// server sees the connection, on a goroutine of its own so that a slow
// client delays no other, within cfg.Timeout, and records the
// connection's TLS state (Info.TLS). A connection whose handshake fails
// is closed and counted; the server never sees it.
//
// The cost is per connection (the handshake and the TLS state); per
// request the wrapper adds nothing to what crypto/tls costs.
//
// Connections that carry no record get one, with no listener name; put
// the layer above Named to have them named.
func TLS(cfg TLSConfig) Layer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHandshakeTimeout
	}
	return func(ln net.Listener) net.Listener {
		return &tlsListener{
			Listener: ln,
			cfg:      cfg,
			ready:    make(chan accepted),
			done:     make(chan struct{}),
			pending:  make(map[net.Conn]struct{}),
		}
	}
}

type tlsListener struct {
	net.Listener
	cfg   TLSConfig
	start sync.Once
	ready chan accepted // connections (or errors) for Accept
	done  chan struct{} // closed by Close

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	closed  bool
	pending map[net.Conn]struct{} // connections in their handshake
}

// Accept returns the next connection whose handshake is done.
func (l *tlsListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close closes the listener and the connections still in their
// handshake.
func (l *tlsListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.Listener.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	return l.closeErr
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !l.deliver(accepted{err: err}) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // the server decides whether to go on
			}
			return
		}
		if !l.track(c) {
			c.Close()
			return
		}
		go l.handshake(c, time.Now().Add(l.cfg.Timeout))
	}
}

// deliver hands a to Accept; false once the listener is closed.
func (l *tlsListener) deliver(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		return false
	}
}

// track records c as pending; false when the listener is closed.
func (l *tlsListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *tlsListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

// handshake does c's handshake and hands the TLS connection to Accept, or
// closes c.
func (l *tlsListener) handshake(c net.Conn, deadline time.Time) {
	tc := &tlsConn{Conn: tls.Server(c, l.cfg.Config)}
	if info := InfoOf(c); info != nil {
		tc.info = info
	} else {
		tc.own = NewInfo("", c.RemoteAddr())
		tc.info = &tc.own
	}
	err := c.SetDeadline(deadline)
	if err == nil {
		err = tc.Handshake()
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	l.untrack(c)
	if err != nil {
		l.cfg.Counts.add(l.failure(err, deadline))
		c.Close()
		return
	}
	st := tc.ConnectionState()
	tc.info.TLS = &st
	if st.NegotiatedProtocol == "h2" && l.cfg.H2 != nil {
		l.cfg.H2(tc)
		return
	}
	if !l.deliver(accepted{c: tc}) {
		c.Close()
	}
}

func (l *tlsListener) failure(err error, deadline time.Time) HandshakeFailure {
	var verr *tls.CertificateVerificationError
	switch {
	case l.cfg.NoCertificate != nil && errors.Is(err, l.cfg.NoCertificate):
		return FailedNoCertificate
	case errors.As(err, &verr) || (l.cfg.NoClientCertificate != nil && errors.Is(err, l.cfg.NoClientCertificate)):
		return FailedClientCertificate
	case isTimeout(err) || !time.Now().Before(deadline):
		return FailedTimeout
	}
	return FailedOther
}

// tlsConn is a connection after the TLS layer: crypto/tls's, with the
// record of the connection under it (or one of its own when that has
// none).
type tlsConn struct {
	*tls.Conn
	info *Info
	own  Info
}

func (c *tlsConn) Info() *Info { return c.info }
