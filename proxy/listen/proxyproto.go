package listen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyMode says whether a listener takes PROXY protocol headers (v1 and
// v2, as HAProxy's send-proxy and send-proxy-v2 write them) from the load
// balancers in front of it.
type ProxyMode int

const (
	// ProxyOff takes no headers: every connection is direct.
	ProxyOff ProxyMode = iota
	// ProxyOn requires a header on every connection from a listed peer
	// and refuses every other peer.
	ProxyOn
	// ProxyOptional takes a header from a listed peer when it sends one;
	// every other connection is direct.
	ProxyOptional
)

// ParseProxyMode parses off, on or optional.
func ParseProxyMode(s string) (ProxyMode, error) {
	switch s {
	case "off":
		return ProxyOff, nil
	case "on":
		return ProxyOn, nil
	case "optional":
		return ProxyOptional, nil
	}
	return ProxyOff, fmt.Errorf("invalid PROXY protocol mode %q (want off, on or optional)", s)
}

func (m ProxyMode) String() string {
	switch m {
	case ProxyOff:
		return "off"
	case ProxyOn:
		return "on"
	case ProxyOptional:
		return "optional"
	}
	return fmt.Sprintf("ProxyMode(%d)", int(m))
}

// Refusal is why the PROXY protocol layer closed a connection before the
// server saw it.
type Refusal int

const (
	// RefusedUnlisted: with ProxyOn, the peer is not one of the listed
	// load balancers.
	RefusedUnlisted Refusal = iota
	// RefusedMissing: with ProxyOn, a listed peer's connection did not
	// start with a PROXY header.
	RefusedMissing
	// RefusedInvalid: the header was malformed, or of a kind that is not
	// supported.
	RefusedInvalid
	// RefusedTimeout: the header was not complete within the layer's
	// timeout.
	RefusedTimeout
	// RefusedClosed: the peer closed the connection, or it failed, before
	// the header was complete.
	RefusedClosed

	numRefusals
)

// Refusals lists every Refusal.
func Refusals() []Refusal {
	r := make([]Refusal, numRefusals)
	for i := range r {
		r[i] = Refusal(i)
	}
	return r
}

func (r Refusal) String() string {
	switch r {
	case RefusedUnlisted:
		return "unlisted_peer"
	case RefusedMissing:
		return "missing"
	case RefusedInvalid:
		return "invalid"
	case RefusedTimeout:
		return "timeout"
	case RefusedClosed:
		return "closed"
	}
	return fmt.Sprintf("Refusal(%d)", int(r))
}

// ProxyCounts counts the connections a PROXY protocol layer refused, by
// Refusal.
type ProxyCounts struct {
	refused [numRefusals]atomic.Uint64
}

// Refused returns the connections refused for r.
func (c *ProxyCounts) Refused(r Refusal) uint64 { return c.refused[r].Load() }

func (c *ProxyCounts) add(r Refusal) {
	if c != nil {
		c.refused[r].Add(1)
	}
}

// DefaultProxyTimeout is ProxyConfig.Timeout's default.
const DefaultProxyTimeout = 10 * time.Second

// ProxyConfig configures the PROXY protocol layer.
type ProxyConfig struct {
	// Mode is ProxyOn or ProxyOptional; with ProxyOff the layer passes
	// every connection through untouched.
	Mode ProxyMode
	// From lists the peers (load balancers) whose headers are honoured.
	// A header from any other peer is not read: with ProxyOptional it
	// reaches the server as the first bytes of the request.
	From []netip.Prefix
	// Timeout bounds the wait for a listed peer's header, counted from
	// the accept. DefaultProxyTimeout when 0 or less.
	Timeout time.Duration
	// Counts, when not nil, counts the refused connections.
	Counts *ProxyCounts
}

// maxV1Header is the longest version 1 header line (the specification's
// 107 bytes); the header reader must hold it whole.
const maxV1Header = 107

// ProxyProtocol is the PROXY protocol layer. It reads the header of a
// listed peer's connection before the server sees the connection, on a
// goroutine of its own so that a slow peer delays no other, within
// cfg.Timeout, and records the address the header carries as the
// connection's client (Info.Client, and the RemoteAddr of the connection
// it yields); Info.Peer stays the load balancer. A LOCAL header (the
// balancer's own health checks) and a header for other than TCP or UDP
// over IPv4 or IPv6 leave the peer as the client. A connection that
// fails the rules of cfg.Mode is closed and counted; the server never
// sees it.
//
// The cost is per connection (the header read's buffer and a wrapper);
// per request the wrapper adds a call to each read and write and
// allocates nothing.
//
// Connections that carry no record get one, with no listener name; put
// the layer above Named to have them named.
func ProxyProtocol(cfg ProxyConfig) Layer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultProxyTimeout
	}
	return func(ln net.Listener) net.Listener {
		if cfg.Mode == ProxyOff {
			return ln
		}
		l := &proxyLayer{cfg: cfg}
		return newPrepListener(ln, l.admit, l.handshake)
	}
}

type proxyLayer struct {
	cfg ProxyConfig
}

// admit gives c a record when it has none, and decides by its peer: a
// listed one's header is read, any other is direct or refused.
func (l *proxyLayer) admit(c net.Conn) (net.Conn, admission) {
	if InfoOf(c) == nil {
		w := &layerConn{Conn: c, own: NewInfo("", c.RemoteAddr())}
		w.info = &w.own
		c = w
	}
	if l.listed(InfoOf(c).Peer.Addr()) {
		return c, admitPrepare
	}
	if l.cfg.Mode == ProxyOn {
		l.cfg.Counts.add(RefusedUnlisted)
		return c, admitRefused
	}
	return c, admitDirect
}

func (l *proxyLayer) listed(a netip.Addr) bool {
	for _, p := range l.cfg.From {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// handshake reads c's header and returns the connection to serve, or
// closes c.
func (l *proxyLayer) handshake(c net.Conn) (net.Conn, func(net.Conn)) {
	nc, refusal, ok := l.readHeader(c, InfoOf(c))
	if !ok {
		if refusal != refusedNone {
			l.cfg.Counts.add(refusal)
		}
		c.Close()
		return nil, nil
	}
	return nc, nil
}

// refusedNone marks a connection closed without being counted.
const refusedNone Refusal = -1

// readHeader reads c's header into info (c's record), and returns the
// connection to serve: one that returns first the bytes read past the
// header.
func (l *proxyLayer) readHeader(c net.Conn, info *Info) (*layerConn, Refusal, bool) {
	deadline := time.Now().Add(l.cfg.Timeout)
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, RefusedClosed, false
	}
	br := bufio.NewReaderSize(c, 2*maxV1Header)
	err := fillV1(br)
	var h *proxyproto.Header
	if err == nil {
		h, err = proxyproto.Read(br)
	} else if errors.Is(err, io.EOF) {
		err = proxyproto.ErrNoProxyProtocol // closed before a byte came
	}
	switch {
	case err == nil:
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		switch {
		case br.Buffered() > 0 && l.cfg.Mode == ProxyOptional:
			h = nil // a direct connection from a listed peer
		case br.Buffered() > 0:
			return nil, RefusedMissing, false
		case l.cfg.Mode == ProxyOptional:
			// Closed before sending anything: as a direct connection
			// would be, it is not counted.
			return nil, refusedNone, false
		default:
			return nil, RefusedClosed, false
		}
	case isTimeout(err) || !time.Now().Before(deadline):
		return nil, RefusedTimeout, false
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReadError(err):
		return nil, RefusedClosed, false
	default:
		return nil, RefusedInvalid, false
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, RefusedClosed, false
	}
	pc, ok := c.(*layerConn)
	if !ok {
		pc = &layerConn{Conn: c, info: info}
	}
	if h != nil && h.Command.IsProxy() {
		if src, ok := sourceOf(h); ok {
			info.Client = src
			pc.remote = net.TCPAddrFromAddrPort(src)
		}
	}
	if n := br.Buffered(); n > 0 {
		pc.rest, _ = br.Peek(n)
	}
	return pc, 0, true
}

// fillV1 buffers the first line of a version 1 header whole: the parser
// takes a line split over reads for an attack, but the specification
// recommends tolerance, and the layer's deadline bounds a slow sender.
// It returns when br holds a line, at least maxV1Header bytes, or bytes
// that cannot start a version 1 header.
func fillV1(br *bufio.Reader) error {
	for n := 1; ; n = br.Buffered() + 1 {
		b, err := br.Peek(n)
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return nil // the parser sees the truncated header
			}
			return err
		}
		b, _ = br.Peek(br.Buffered())
		sig := b[:min(len(b), len(sigV1))]
		if !bytes.Equal(sig, sigV1[:len(sig)]) || bytes.IndexByte(b, '\n') >= 0 || len(b) >= maxV1Header {
			return nil
		}
	}
}

var sigV1 = []byte("PROXY ")

// sourceOf is the client address of a PROXY header: TCP or UDP over IPv4
// or IPv6. Others (UNSPEC, UNIX) carry none the request path can use.
func sourceOf(h *proxyproto.Header) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := h.SourceAddr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return ap, false
	}
	if !ap.Addr().IsValid() {
		return ap, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isReadError: the connection failed (reset) under the header read.
func isReadError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}
