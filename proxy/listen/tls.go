package listen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
		l := &tlsLayer{cfg: cfg}
		return newPrepListener(ln, nil, l.handshake)
	}
}

type tlsLayer struct {
	cfg TLSConfig
}

// handshake does c's handshake within the timeout and returns the TLS
// connection, and for an HTTP/2 one where it goes; or closes c.
func (l *tlsLayer) handshake(c net.Conn) (net.Conn, func(net.Conn)) {
	deadline := time.Now().Add(l.cfg.Timeout)
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
	if err != nil {
		l.cfg.Counts.add(l.failure(err, deadline))
		c.Close()
		return nil, nil
	}
	st := tc.ConnectionState()
	tc.info.TLS = &st
	if st.NegotiatedProtocol == "h2" && l.cfg.H2 != nil {
		return tc, l.cfg.H2
	}
	return tc, nil
}

func (l *tlsLayer) failure(err error, deadline time.Time) HandshakeFailure {
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
