// Package listen is the proxy's listener stack: a listener is a base
// (TCP) with layers over it (PROXY protocol, TLS), and each connection it
// yields carries one record, Info, of what the layers learned of it: the
// listener's name, the peer, the client behind it, the TLS state. The
// request path reads the client's address from that record, never from
// the socket.
package listen

import (
	"crypto/tls"
	"net"
	"net/netip"
)

// Info is what the listener stack learned of one client connection.
type Info struct {
	// Listener is the name of the listener that accepted it.
	Listener string
	// Peer is the other end of the TCP connection.
	Peer netip.AddrPort
	// Client is the client: Peer, unless a layer learned the address
	// behind it (a load balancer's PROXY protocol header).
	Client netip.AddrPort
	// TLS is the connection's TLS state once a TLS layer's handshake is
	// done; nil on a plain connection.
	TLS *tls.ConnectionState
}

// NewInfo is the record of a connection from peer (a *net.TCPAddr, or any
// address that parses as host:port) accepted by the listener name, before
// any layer.
func NewInfo(name string, peer net.Addr) Info {
	var ap netip.AddrPort
	switch a := peer.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return Info{Listener: name, Peer: ap, Client: ap}
}

// Conn is a connection that carries its record.
type Conn interface {
	net.Conn
	Info() *Info
}

// InfoOf returns c's record, or nil when c carries none.
func InfoOf(c net.Conn) *Info {
	if lc, ok := c.(Conn); ok {
		return lc.Info()
	}
	return nil
}

// Layer is one layer of a listener stack: it wraps a listener, whose
// connections are Conns, into one whose connections are Conns too (and
// keep or refine the record of the connection they wrap).
type Layer func(net.Listener) net.Listener

// Stack builds a listener from base and layers, applied in order: the
// first wraps base, the last is what the server accepts from.
func Stack(base net.Listener, layers ...Layer) net.Listener {
	ln := base
	for _, l := range layers {
		ln = l(ln)
	}
	return ln
}

// Named is the layer that gives every connection that carries no record
// yet one of its own, named name: a base listener of any kind (a test's,
// a pipe's) then feeds the request path like TCP's.
func Named(name string) Layer {
	return func(ln net.Listener) net.Listener { return named{ln, name} }
}

type named struct {
	net.Listener
	name string
}

func (l named) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || InfoOf(c) != nil {
		return c, err
	}
	return &conn{Conn: c, info: NewInfo(l.name, c.RemoteAddr())}, nil
}

// conn is a connection with a record and nothing else of its own.
type conn struct {
	net.Conn
	info Info
}

func (c *conn) Info() *Info { return &c.info }
