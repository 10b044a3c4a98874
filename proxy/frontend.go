package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/valyala/fasthttp"
)

// frontEnd is the client side of an exchange, as the front end that
// serves the client has it: what the stages and the forward need beyond
// the request and response heads (exchange.req, exchange.resp: package
// head's types, which proxy/upstream writes and reads). The fasthttp
// server (fastClient) is one front end; net/http's (httpClient,
// HTTPHandler) another. Only the front ends' files import fasthttp.
type frontEnd interface {
	// path is the request path as the proxy compares it: dot segments
	// resolved, slashes merged, escapes decoded.
	path() []byte
	// peer is the address of the client connection's other end.
	peer() netip.Addr
	// conn sets the client connection's read deadlines, for a streamed
	// body, and interrupts a read blocked on it.
	conn() readDeadliner
	// bodyBytes is a body of known length up to prefetchBytes, read
	// already; bodyStream is the reader of any other body, or nil when
	// the request has none.
	bodyBytes() []byte
	bodyStream() io.Reader
	// tls reports whether the client connection is TLS: the scheme of
	// X-Forwarded-Proto.
	tls() bool
	// setClose closes the client connection after the response.
	setClose()
	// respond sets the proxy's own response: status and JSON body.
	respond(status int, body []byte)
	// protocol is the client's HTTP version.
	protocol() protocol
	// context is the request's context when the front end has one that
	// ends when the client resets the request (HTTP/2, HTTP/3): the
	// exchange with the instance is then abandoned (upstream.Request's
	// Context). Nil for HTTP/1, where the connection is the request.
	context() context.Context
}

// protocol is an HTTP version a client speaks: the access log's
// "protocol" and the protocol label of the request metrics.
type protocol uint8

const (
	protoHTTP11 protocol = iota
	protoHTTP10
	protoHTTP2
	protoHTTP3
	numProtocols
)

var protocolNames = [numProtocols]string{
	protoHTTP11: "HTTP/1.1",
	protoHTTP10: "HTTP/1.0",
	protoHTTP2:  "HTTP/2",
	protoHTTP3:  "HTTP/3",
}

func (p protocol) String() string { return protocolNames[p] }

// fastClient is the front end of the fasthttp server.
type fastClient struct{ ctx *fasthttp.RequestCtx }

var _ frontEnd = (*fastClient)(nil)

func (c *fastClient) path() []byte { return c.ctx.Path() }

func (c *fastClient) peer() netip.Addr {
	if info := listen.InfoOf(c.ctx.Conn()); info != nil {
		return info.Client.Addr()
	}
	if ip := c.ctx.RemoteIP(); ip != nil {
		a, _ := netip.AddrFromSlice(ip)
		return a.Unmap()
	}
	return netip.Addr{}
}

func (c *fastClient) conn() readDeadliner          { return c.ctx.Conn() }
func (c *fastClient) bodyBytes() []byte            { return c.ctx.Request.Body() }
func (c *fastClient) bodyStream() io.Reader        { return c.ctx.RequestBodyStream() }
func (c *fastClient) tls() bool                    { return c.tlsState() != nil }
func (c *fastClient) setClose()                    { c.ctx.SetConnectionClose() }
func (c *fastClient) respond(status int, b []byte) { respondFast(&c.ctx.Response, status, b) }
func (c *fastClient) context() context.Context     { return nil }

func (c *fastClient) protocol() protocol {
	if c.ctx.Request.Header.IsHTTP11() {
		return protoHTTP11
	}
	return protoHTTP10
}

// tlsState is the client connection's TLS state, as the TLS layer of
// the listener stack recorded it; nil on a plain connection.
func (c *fastClient) tlsState() *tls.ConnectionState {
	if info := listen.InfoOf(c.ctx.Conn()); info != nil {
		return info.TLS
	}
	return nil
}

// tlsStater is the optional capability of a front end that knows its
// client connection's TLS state.
type tlsStater interface {
	tlsState() *tls.ConnectionState
}

// logConn puts the client's protocol, and over TLS the version and
// whether the session was resumed, in e; a plain connection leaves the
// TLS fields empty.
func (x *exchange) logConn(e *accesslog.Entry) {
	e.Protocol = x.fe.protocol().String()
	ts, ok := x.fe.(tlsStater)
	if !ok {
		return
	}
	if st := ts.tlsState(); st != nil {
		e.TLSVersion, e.TLSResumed = tlsVersionName(st.Version), st.DidResume
	}
}

// tlsVersionName is the access log's name of a TLS version.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1.0"
	}
	return "unknown"
}

func respondFast(r *fasthttp.Response, status int, body []byte) {
	r.Header.SetStatusCode(status)
	r.Header.SetContentTypeBytes(strContentTypeJSON)
	r.SetBodyRaw(body)
}

// bindFast makes x an exchange of the fasthttp server's request ctx.
func (x *exchange) bindFast(ctx *fasthttp.RequestCtx) {
	x.fast.ctx = ctx
	x.fe = &x.fast
	x.req, x.resp = head.RequestOf(&ctx.Request.Header), head.ResponseOf(&ctx.Response.Header)
}

// delivery is how a front end sends the response the request path
// prepared.
type delivery uint8

const (
	// deliverHeaders: x.resp (and, for the proxy's own responses, the
	// body given to respond) is the whole response.
	deliverHeaders delivery = iota
	// deliverBody: x.resp, then the body that x reads from the instance
	// (Read, ReadPipe; CloseWithError when done).
	deliverBody
	// deliverTunnel: the instance switched protocols; x.uresp.Tunnel and
	// x.upgradeHead are the connection and the 101 to write.
	deliverTunnel
)

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	x := s.exPool.Get().(*exchange)
	x.bindFast(ctx)
	s.begin(x, ctx.Time())
	switch x.serve(s.ids.next(&x.idBuf)) {
	case deliverBody:
		ctx.Response.SetBodyStream(x, int(x.uresp.ContentLength))
		return // finished by CloseWithError once the body is written
	case deliverTunnel:
		s.tunnel(ctx, x.uresp.Tunnel, x.upgradeHead)
	}
	ctx.Response.Header.SetCanonical(strRequestID, x.id)
	if s.draining.Load() {
		ctx.SetConnectionClose()
	}
	x.status = ctx.Response.StatusCode()
	x.finish()
}

// handleParseError answers requests that fasthttp could not parse.
//
// A connection that the client reset before a whole request came (a
// load balancer's TCP probe, a client gone) gets no answer and no access
// log line: there is no one to answer, and no request to log.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		ctx.SetConnectionClose()
		s.log.Debug("connection reset before a request", "remote", ctx.RemoteAddr().String())
		return
	}
	x := s.exPool.Get().(*exchange)
	x.bindFast(ctx)
	s.begin(x, time.Now())
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		x.own(reasonHeaderTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		x.own(reasonClientTimeout)
	default:
		x.own(reasonBadRequest)
	}
	ctx.Response.Header.SetCanonical(strRequestID, s.ids.next(&x.idBuf))
	ctx.SetConnectionClose()
	// What the client is still sending (the rest of an oversized header)
	// is read and dropped briefly, so that it reads this response rather
	// than a reset.
	if c := ctx.Conn(); c != nil {
		_ = c.SetReadDeadline(time.Now().Add(parseErrorLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, lingerBytes))
	}
	x.status = ctx.Response.StatusCode()
	s.log.Debug("malformed request", "error", err, "remote", ctx.RemoteAddr().String())
	x.finish()
}
