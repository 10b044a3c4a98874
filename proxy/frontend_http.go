package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/proxy/listen"
)

// HTTPHandler returns the request path as a net/http handler: a front end
// for servers of net/http's kind (HTTP/2, HTTP/3), driving the same
// stages, balancing, retries, transport (proxy/upstream, HTTP/1.1 to the
// instances), status mapping, metrics and access log as the fasthttp
// listener of Run and Serve. It does not upgrade connections: a request's
// Upgrade header is not sent on. The handler serves alongside Serve, or
// without it once a table is applied.
func (s *Server) HTTPHandler() http.Handler { return (*httpFrontEnd)(s) }

type httpFrontEnd Server

func (f *httpFrontEnd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := (*Server)(f)
	c := httpClients.Get().(*httpClient)
	c.w, c.r, c.rc = w, r, http.NewResponseController(w)
	defer c.release()
	// The instance may answer while the request body still streams to it
	// (an echo, an early error): net/http's HTTP/1 server would otherwise
	// discard the unread body when the response starts.
	_ = c.rc.EnableFullDuplex()
	x := s.exPool.Get().(*exchange)
	x.fe, x.req, x.resp = c, &c.req, &c.resp
	s.begin(x, time.Now())
	var d delivery
	switch err := c.readRequest(s.cfg.MaxHeaderBytes); {
	case err == nil:
		d = x.serve(s.ids.next(&x.idBuf))
	default:
		x.id = s.ids.next(&x.idBuf)
		s.log.Debug("malformed request", "error", err, "remote", r.RemoteAddr)
		x.own(c.readFailure(err))
		x.fe.setClose()
	}
	if d == deliverTunnel {
		// Not asked for (the Upgrade header is not sent on): the instance
		// answered 101 to a request that did not ask to switch.
		_ = x.uresp.Tunnel.Close()
		x.resp.Reset()
		x.own(reasonUpstreamBad)
		d = deliverHeaders
	}
	if d == deliverHeaders {
		x.resp.SetCanonical(strRequestID, x.id)
	}
	if s.draining.Load() {
		c.close = true
	}
	x.status = x.resp.StatusCode()
	c.writeHeader(d == deliverBody, x.uresp.ContentLength)
	if d != deliverBody {
		if len(c.body) > 0 {
			_, _ = w.Write(c.body)
		}
		x.finish()
		return
	}
	_ = x.CloseWithError(c.copyBody(x))
}

// begin starts an exchange that starts at start.
func (s *Server) begin(x *exchange, start time.Time) {
	x.s, x.start, x.backend = s, start, -1
	s.metrics.inFlight.Inc()
	s.budget.active.Add(1)
	s.progress.requestStarted(start)
}

// httpClient is the front end of a net/http request. They are pooled
// (httpClients) with their heads and buffers: a request reuses what an
// earlier one grew.
type httpClient struct {
	w     http.ResponseWriter
	r     *http.Request
	rc    *http.ResponseController
	req   head.Request
	resp  head.Response
	body  []byte // the proxy's own response body
	mem   []byte // a short body of known length, read ahead (in memBuf)
	close bool

	memBuf  []byte
	wire    bytes.Buffer  // the request head in HTTP/1.1 form
	wireR   *bufio.Reader // reads wire
	names   []string      // the request's header names, sorted
	copyBuf []byte        // the response body's copy buffer
}

var httpClients = sync.Pool{New: func() any { return new(httpClient) }}

// release returns c to the pool, once nothing refers to its heads.
func (c *httpClient) release() {
	c.w, c.r, c.rc = nil, nil, nil
	c.req.Reset()
	c.resp.Reset()
	c.body, c.mem, c.close = nil, nil, false
	if c.wire.Cap() > 64<<10 {
		c.wire = bytes.Buffer{} // an outsized head is not kept
	}
	clear(c.names)
	c.names = c.names[:0]
	httpClients.Put(c)
}

var _ frontEnd = (*httpClient)(nil)

// readRequest copies the request's head into c.req, in the form the
// fasthttp front end parses from the wire: a request line in HTTP/1.1,
// Host first, then the header lines, with the framing of the body net/http
// read, and reads a short body of known length ahead.
func (c *httpClient) readRequest(maxHeaderBytes int) error {
	r := c.r
	b := &c.wire
	b.Reset()
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(r.RequestURI)
	b.WriteString(" HTTP/1.1\r\n")
	if r.Host != "" {
		b.WriteString("Host: " + r.Host + "\r\n")
	}
	names := c.names[:0]
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names) // the order of a map; sorted, so that it is one order
	c.names = names
	for _, k := range names {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding", "Upgrade":
			continue // from r's own fields; no upgrades here
		}
		for _, v := range r.Header[k] {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	switch {
	case r.ContentLength > 0:
		b.WriteString("Content-Length: " + strconv.FormatInt(r.ContentLength, 10) + "\r\n")
	case r.ContentLength < 0 && hasBody:
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	b.WriteString("\r\n")
	// The reader holds the whole head: net/http bounded it already
	// (MaxHeaderBytes), and the request line and framing come on top.
	if size := maxHeaderBytes + 8<<10; c.wireR == nil || c.wireR.Size() < size {
		c.wireR = bufio.NewReaderSize(b, size)
	} else {
		c.wireR.Reset(b)
	}
	if err := c.req.Read(c.wireR); err != nil {
		return err
	}
	if n := r.ContentLength; n > 0 && n <= prefetchBytes {
		if int64(cap(c.memBuf)) < n {
			c.memBuf = make([]byte, prefetchBytes)
		}
		c.mem = c.memBuf[:n]
		if _, err := io.ReadFull(r.Body, c.mem); err != nil {
			return &upstreamBodyError{err}
		}
	}
	return nil
}

// upstreamBodyError marks a failure to read the client's body ahead.
type upstreamBodyError struct{ err error }

func (e *upstreamBodyError) Error() string { return "reading the request body: " + e.err.Error() }

// readFailure maps a request that could not be read to the proxy's
// answer: a body that failed like a streamed one, anything else 400.
func (c *httpClient) readFailure(err error) reason {
	var be *upstreamBodyError
	if errors.As(err, &be) {
		var ne net.Error
		switch {
		case errors.As(be.err, &ne) && ne.Timeout():
			return reasonClientTimeout
		case errors.As(be.err, new(*http.MaxBytesError)):
			return reasonBodyTooLarge
		}
		return reasonClientClosed
	}
	return reasonBadRequest
}

func (c *httpClient) path() []byte {
	return head.URIPath(c.req.Host(), c.req.RequestURI())
}

func (c *httpClient) peer() netip.Addr {
	if info := connInfo(c.r.Context()); info != nil {
		return info.Client.Addr()
	}
	ap, err := netip.ParseAddrPort(c.r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (c *httpClient) conn() readDeadliner { return c.rc }

func (c *httpClient) bodyBytes() []byte { return c.mem }

func (c *httpClient) bodyStream() io.Reader {
	if c.mem != nil || c.r.Body == nil || c.r.Body == http.NoBody {
		return nil
	}
	return c.r.Body
}

func (c *httpClient) tls() bool { return c.r.TLS != nil }

func (c *httpClient) tlsState() *tls.ConnectionState { return c.r.TLS }

func (c *httpClient) context() context.Context { return c.r.Context() }

func (c *httpClient) protocol() protocol {
	switch c.r.ProtoMajor {
	case 3:
		return protoHTTP3
	case 2:
		return protoHTTP2
	}
	if c.r.ProtoMinor == 0 {
		return protoHTTP10
	}
	return protoHTTP11
}

// connInfoKey is the context key of a connection's record (listen.Info)
// for the requests a server of net/http's kind serves on it.
type connInfoKey struct{}

// withConnInfo is ctx with the record of the connection c, when it has
// one: the client address a layer learned (the PROXY protocol) is the
// requests' peer.
func withConnInfo(ctx context.Context, c net.Conn) context.Context {
	if info := listen.InfoOf(c); info != nil {
		return context.WithValue(ctx, connInfoKey{}, info)
	}
	return ctx
}

func connInfo(ctx context.Context) *listen.Info {
	info, _ := ctx.Value(connInfoKey{}).(*listen.Info)
	return info
}

func (c *httpClient) setClose() { c.close = true }

func (c *httpClient) respond(status int, body []byte) {
	c.resp.SetStatusCode(status)
	c.resp.SetContentTypeBytes(strContentTypeJSON)
	c.body = body
	c.resp.SetContentLength(len(body))
}

// writeHeader writes c.resp as the response head. A streamed body of
// known length keeps it; one of unknown length is net/http's to frame.
func (c *httpClient) writeHeader(streamed bool, length int64) {
	h := c.w.Header()
	for k, v := range c.resp.All() {
		switch string(k) {
		case "Content-Length", "Connection", "Transfer-Encoding":
			continue
		}
		h.Add(string(k), string(v))
	}
	switch {
	case !streamed:
		h.Set("Content-Length", strconv.Itoa(len(c.body)))
	case length >= 0:
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	if c.close && c.r.ProtoMajor < 3 {
		// HTTP/2's server turns it into a GOAWAY; HTTP/3 has no such
		// header, and its drain is the server's GOAWAY.
		h.Set("Connection", "close")
	}
	c.w.WriteHeader(c.resp.StatusCode())
}

// copyBody streams the instance's body (x) to the client, flushing each
// piece so that a streamed response reaches the client as it comes. It
// returns the client's write error, if any.
func (c *httpClient) copyBody(x *exchange) error {
	if c.copyBuf == nil {
		c.copyBuf = make([]byte, 32<<10)
	}
	buf := c.copyBuf
	for {
		n, err := x.Read(buf)
		if n > 0 {
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := c.rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return ferr
			}
		}
		if err != nil {
			return nil // the end, or the instance's failure (x.ubody.Err)
		}
	}
}
