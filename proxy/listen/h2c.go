package listen

import (
	"bytes"
	"net"
	"time"
)

// h2Preface is what an HTTP/2 client with prior knowledge sends first
// (RFC 9113 §3.4). No HTTP/1 request starts with it.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// H2CConfig configures the H2C layer.
type H2CConfig struct {
	// H2 serves the connections that start with HTTP/2's preface, on the
	// goroutine that read it; the connection returns the preface again.
	// Nil: the layer passes every connection through untouched.
	H2 func(net.Conn)
	// Timeout bounds the wait for a connection's first bytes.
	// DefaultHandshakeTimeout when 0 or less.
	Timeout time.Duration
}

// H2C is the layer of cleartext HTTP/2 with prior knowledge: it reads
// the start of each connection, off the accept loop and within the
// timeout, and hands those that begin with HTTP/2's preface to
// cfg.H2; the others go to Accept, their first bytes read again by the
// server. A connection that sends nothing within the timeout is closed,
// as the HTTP/1 server would close it. There is no Upgrade: h2c.
func H2C(cfg H2CConfig) Layer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHandshakeTimeout
	}
	return func(ln net.Listener) net.Listener {
		if cfg.H2 == nil {
			return ln
		}
		return newPrepListener(ln, nil, func(c net.Conn) (net.Conn, func(net.Conn)) { return sniffH2(c, cfg) })
	}
}

// sniffH2 reads c until its bytes depart from HTTP/2's preface or the
// preface is whole.
func sniffH2(c net.Conn, cfg H2CConfig) (net.Conn, func(net.Conn)) {
	if err := c.SetReadDeadline(time.Now().Add(cfg.Timeout)); err != nil {
		c.Close()
		return nil, nil
	}
	buf := make([]byte, len(h2Preface))
	n := 0
	for n < len(buf) && bytes.Equal(buf[:n], h2Preface[:n]) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			if n > 0 && !bytes.Equal(buf[:n], h2Preface[:n]) {
				break // HTTP/1 bytes: the server meets the error after them
			}
			c.Close() // nothing, or part of a preface: nothing to serve
			return nil, nil
		}
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, nil
	}
	lc, ok := c.(*layerConn)
	if !ok || len(lc.rest) > 0 {
		lc = &layerConn{Conn: c, info: InfoOf(c)}
		if lc.info == nil {
			lc.own = NewInfo("", c.RemoteAddr())
			lc.info = &lc.own
		}
	}
	lc.rest = buf[:n]
	if bytes.Equal(buf[:n], h2Preface) {
		return lc, cfg.H2
	}
	return lc, nil
}
