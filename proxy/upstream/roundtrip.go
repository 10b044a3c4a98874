package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/proxy/head"
	"github.com/valyala/fasthttp"
)

// Request is what RoundTrip sends.
//
// A body is sent whatever the method, framed by Content-Length (or chunked
// when streamed with no known length): a GET may carry one (Elasticsearch's
// _search takes a JSON body). But an instance may ignore the body of a
// method that gives it no defined meaning (GET, HEAD, DELETE, OPTIONS,
// TRACE) and read it as the next request on the connection, whose answer
// would then wait there for another client. So the connection of such a
// request with a body (Body not empty, or BodyStream set with a BodyLen
// other than 0) is closed after the exchange, never pooled.
type Request struct {
	// Header is written as is, except for its framing: RoundTrip sets
	// Content-Length or Transfer-Encoding from the body. The caller has
	// removed hop-by-hop headers.
	Header *head.Request
	// Body is a body held in memory. A request with no BodyStream can be
	// sent again on another connection.
	Body []byte
	// BodyStream, when not nil, is streamed instead of Body; BodyLen is its
	// length, or -1 when unknown (sent chunked).
	BodyStream io.Reader
	BodyLen    int64
	// Upgrade is set when the request asks to switch protocols (the caller
	// kept its Connection: Upgrade and Upgrade headers): a 101 answer is
	// then a Tunnel, not an error.
	Upgrade bool
	// Context, when not nil, is the client's: when it ends before the
	// exchange does (an HTTP/2 or HTTP/3 client reset the stream), the
	// exchange is abandoned — its connection closed, whether RoundTrip
	// is still waiting for the response or its Body is being read — and
	// RoundTrip fails with a KindClientBody Error that wraps the
	// context's error. Nil costs nothing.
	Context context.Context
}

// Response is what RoundTrip received.
type Response struct {
	// Header receives the response headers. RoundTrip resets it first.
	Header *head.Response
	// Body streams the response body; nil when the response has none.
	// The caller must Close it exactly once and not use it afterwards.
	Body *Body
	// ContentLength is the body length, or -1 when it is not known in
	// advance (chunked or until close).
	ContentLength int64
	// Sent is when the request went out: for one sent in a single write,
	// when the exchange began with the connection in hand; otherwise when
	// its last byte was written. Received is when the response headers
	// were read; the difference is the instance's response time.
	Sent, Received time.Time
	// BytesOut is how many request body bytes were sent. With a streamed
	// body it is final only when BodyPending is false.
	BytesOut int64
	// BodyPending is true when the response arrived before the streamed
	// request body was completely sent: the instance did not read all of
	// it, and the rest of the client's body is unread.
	BodyPending bool
	// Tunnel is set, and Body nil, when the instance switched protocols
	// (101) for an Upgrade request. The caller must Close it.
	Tunnel *Tunnel
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// RoundTrip sends req to the instance at addr and reads the response
// headers into resp. On success resp.Body, when not nil, streams the body
// and owns the connection until closed.
//
// A reused keep-alive connection is checked before the request goes out
// on it: when it has bytes waiting (a response to no request, the rest of
// an earlier message) or the instance has closed it, it is closed and the
// request, whatever it is, goes on a new connection; nothing was sent
// (Stats.Stale counts these). A request that failed on a reused
// connection after that, before any response byte arrived, is sent once
// more on a new connection, when its method is idempotent and its body is
// in memory: the instance closed an idle connection as the request went
// out, and never saw it. Not when the instance is retired (see Retain).
func (t *Transport) RoundTrip(addr string, req *Request, resp *Response) error {
	p := t.pool(addr)
	replayable := req.BodyStream == nil && isIdempotent(req.Header.Method())
	fresh := false
	for {
		if err := canceled(req); err != nil {
			return err
		}
		// One clock read serves the pool and the time the request is
		// sent, unless a dial came between.
		now := time.Now()
		c, reused, err := p.get(fresh, monoOf(now))
		if err != nil {
			return err
		}
		if !reused {
			now = time.Now()
		}
		if req.Context != nil {
			c.stopCancel = context.AfterFunc(req.Context, c.abandon)
		}
		err = t.exchange(c, req, resp, now, reused)
		if err == nil {
			return nil
		}
		c.req, c.broken = nil, false
		p.closeConn(c)
		if cerr := canceled(req); cerr != nil {
			return cerr // the failure was the abandonment's
		}
		if err == errEarly {
			t.stale.Add(1)
			fresh = true
			continue
		}
		var ue *Error
		// Not to a retired instance: its connections are closed on
		// purpose (the grace ended), and it gets no new request.
		if reused && replayable && errors.As(err, &ue) && ue.stale && !p.retired.Load() {
			fresh = true
			continue
		}
		return err
	}
}

// canceled is the error of a request whose client has gone (see
// Request.Context), or nil.
func canceled(req *Request) error {
	if req.Context == nil || req.Context.Err() == nil {
		return nil
	}
	return &Error{Kind: KindClientBody, Sent: true, Err: context.Cause(req.Context)}
}

// abandon closes the connection of an exchange whose client has gone:
// a read or write blocked on it fails at once. (See Request.Context.)
func (c *conn) abandon() { _ = c.Conn.Close() }

// endCancel ends the watch of the exchange's Request.Context, if any. It
// reports whether the connection was abandoned (closed) already.
func (c *conn) endCancel() (abandoned bool) {
	if c.stopCancel == nil {
		return false
	}
	abandoned = !c.stopCancel()
	c.stopCancel = nil
	return abandoned
}

// received returns the time now, for a response to a request sent at
// sent: sent plus the time since, one clock read where time.Now makes two.
// (Only the difference is used: the backend's response time.)
func received(sent time.Time) time.Time {
	return sent.Add(time.Since(sent))
}

// ignoresBody reports whether a body has no defined meaning for method
// (RFC 9110 §9.3): an instance may ignore one.
func ignoresBody(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodDelete,
		http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isIdempotent(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Interrupter is an optional capability of Request.BodyStream: Interrupt
// makes a Read blocked on the client return at once. The transport calls
// it when it abandons a streamed body (the instance failed or answered
// without reading it), so that the body goroutine ends promptly.
type Interrupter interface {
	Interrupt()
}

// writeResult is what the body-writing goroutine reports.
type writeResult struct {
	n    int64
	err  error
	sent time.Time
}

// exchange sends req on c and reads the response headers. now is the time
// the exchange starts; reused is set when c comes from the idle pool, and
// is then checked first (see RoundTrip).
func (t *Transport) exchange(c *conn, req *Request, resp *Response, now time.Time, reused bool) error {
	cfg := &t.cfg
	h := req.Header
	if reused && c.br.Buffered() > 0 {
		return errEarly // never pooled so: see release
	}
	if (len(req.Body) > 0 || req.BodyStream != nil && req.BodyLen != 0) && ignoresBody(h.Method()) {
		c.broken = true // see Request
	}
	switch {
	case req.BodyStream != nil:
		h.SetContentLength(int(req.BodyLen))
	case len(req.Body) > 0 || h.ContentLength() > 0:
		h.SetContentLength(len(req.Body))
	}
	resp.BytesOut, resp.BodyPending, resp.Tunnel = 0, false, nil
	resp.Sent = now // until the request is out, for a later one
	c.req = req
	c.gotHeader.Store(false)
	if c.rc != nil && req.BodyStream == nil && len(req.Body) <= maxAwaitRequest {
		// The common case: the request in one write, then the wait for
		// the response without a read that finds nothing (see sendAwait).
		buf := h.AppendBytes(c.wbuf[:0])
		buf = append(buf, req.Body...)
		if cap(buf) <= 2*maxAwaitRequest {
			c.wbuf = buf
		}
		mono := monoOf(now)
		c.wantRead(mono+int64(cfg.ResponseHeaderTimeout), mono)
		if err := c.sendAwait(buf, reused, cfg.IdleTimeout); err != nil {
			return err
		}
		resp.BytesOut = int64(len(req.Body))
		return t.readResponse(c, req, resp)
	}
	if reused && !c.quiet() {
		return errEarly
	}
	_ = c.SetWriteDeadline(time.Now().Add(cfg.IdleTimeout))
	// A write that fails before any byte reached the socket (a pooled
	// connection the instance closed or reset) was never sent.
	start := c.out.n
	if err := h.Write(c.bw); err != nil {
		return writeErr(err, c.out.n > start, true)
	}
	if len(req.Body) > 0 && req.BodyStream == nil {
		if _, err := c.bw.Write(req.Body); err != nil {
			return writeErr(err, c.out.n > start, true)
		}
		resp.BytesOut = int64(len(req.Body))
	}
	if err := c.bw.Flush(); err != nil {
		return writeErr(err, c.out.n > start, true)
	}
	if req.BodyStream != nil {
		// Full duplex: the body goes out on its own goroutine while the
		// response is awaited, so an instance that answers before reading
		// the whole body (an early 413, a streaming echo) cannot deadlock
		// the exchange.
		c.writing = true
		_ = c.SetReadDeadline(time.Now().Add(cfg.ResponseHeaderTimeout))
		go t.writeBody(c, req.BodyStream, req.BodyLen)
	} else {
		resp.Sent = time.Now()
		_ = c.SetReadDeadline(resp.Sent.Add(cfg.ResponseHeaderTimeout))
	}
	return t.readResponse(c, req, resp)
}

// readResponse reads the response headers of the request just sent on c
// and sets resp up to stream the body.
func (t *Transport) readResponse(c *conn, req *Request, resp *Response) error {
	cfg := &t.cfg
	h := req.Header
	rh := resp.Header
	var ambiguous bool
	for {
		var err error
		if ambiguous, err = readHead(c.br, rh); err != nil {
			rerr := readErr(err)
			if c.writing {
				res := c.stopWriting()
				resp.BytesOut = res.n
				if ue, ok := AsError(res.err); ok && ue.Kind == KindClientBody {
					return res.err // the client's failure caused the abort
				}
				// A body write that failed on its own (the instance closed
				// or reset the connection) ends the header read with the
				// deadline it set: its error is the cause.
				if ue, ok := AsError(res.err); ok && ue.Kind != KindTimeout {
					if re, ok := AsError(rerr); ok && re.Kind == KindTimeout {
						return res.err
					}
				}
			}
			return rerr
		}
		code := rh.StatusCode()
		if code < 100 || code > 599 {
			if c.writing {
				c.stopWriting()
			}
			return &Error{Kind: KindMalformed, Sent: true, Err: errors.New("unexpected status " + strconv.Itoa(code))}
		}
		if code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols && req.Upgrade && !c.writing {
			resp.Received = received(resp.Sent)
			c.gotHeader.Store(true)
			c.broken = true // never reused
			if c.endCancel() {
				return canceled(req)
			}
			_ = c.SetDeadline(time.Time{})
			resp.Tunnel = &Tunnel{c: c}
			resp.Body, resp.ContentLength = nil, 0
			return nil
		}
		if code == http.StatusSwitchingProtocols {
			if c.writing {
				c.stopWriting()
			}
			return &Error{Kind: KindMalformed, Sent: true, Err: errors.New("unexpected status " + strconv.Itoa(code))}
		}
		// 100 Continue, 103 Early Hints: skip to the final response.
	}
	resp.Received = received(resp.Sent)
	c.gotHeader.Store(true)
	if c.writing {
		select {
		case res := <-c.wdone:
			c.writing = false
			resp.BytesOut = res.n
			resp.Sent = res.sent
			if res.err != nil {
				// The instance answered, but not all of the body reached
				// it: the connection cannot be reused.
				c.broken = true
				resp.BodyPending = true
			}
		default:
			resp.BodyPending = true
			resp.Sent = resp.Received
		}
	}

	// A message framed ambiguously is read as fasthttp frames it
	// (Transfer-Encoding over Content-Length), but where it ends is
	// uncertain: nothing more is read from the connection.
	keepAlive := !rh.ConnectionClose() && !c.broken && !ambiguous
	code := rh.StatusCode()
	if h.IsHead() || code == http.StatusNoContent || code == http.StatusNotModified {
		resp.Body, resp.ContentLength = nil, 0
		c.release(keepAlive)
		return nil
	}
	b := bodyPool.Get().(*Body)
	*b = Body{c: c, idle: cfg.IdleTimeout, keepAlive: keepAlive}
	switch cl := rh.ContentLength(); {
	case cl >= 0:
		b.mode, b.left = modeLength, int64(cl)
		resp.ContentLength = int64(cl)
	case cl == -1:
		b.mode = modeChunked
		resp.ContentLength = -1
	default:
		b.mode, b.keepAlive = modeClose, false
		resp.ContentLength = -1
	}
	resp.Body = b
	return nil
}

// writeBody runs on its own goroutine: it streams the request body and
// reports on c.wdone. While it makes progress it keeps pushing the
// response-header deadline out, so that the header timeout counts from the
// end of the body.
func (t *Transport) writeBody(c *conn, r io.Reader, n int64) {
	sent, err := t.writeStream(c, r, n, true)
	if err == nil {
		if ferr := c.bw.Flush(); ferr != nil {
			err = writeErr(ferr, true, false)
		}
	}
	now := time.Now()
	if !c.gotHeader.Load() {
		if err == nil {
			_ = c.SetReadDeadline(now.Add(t.cfg.ResponseHeaderTimeout))
		} else {
			// The request cannot be completed: make the reader give up too.
			_ = c.SetReadDeadline(now)
		}
	}
	c.wdone <- writeResult{n: sent, err: err, sent: now}
}

// stopWriting ends the body goroutine and waits for it: the connection is
// cut and a Read blocked on the client is interrupted.
func (c *conn) stopWriting() writeResult {
	c.writing = false
	select {
	case res := <-c.wdone:
		return res
	default:
	}
	c.broken = true
	_ = c.SetDeadline(time.Now())
	if in, ok := c.req.BodyStream.(Interrupter); ok {
		in.Interrupt()
	}
	return <-c.wdone
}

// release returns c to the pool when it can carry another exchange, and
// closes it otherwise. A body goroutine still running is given a moment to
// finish (it normally has: the instance answered after reading the whole
// body), then stopped.
//
// A connection goes back to the pool only when the response ended at the
// end of what was read from it: bytes read past the message are not the
// answer to any request sent, and would be taken as the next one's.
func (c *conn) release(keepAlive bool) {
	if c.writing {
		select {
		case res := <-c.wdone:
			c.writing = false
			if res.err != nil {
				keepAlive = false
			}
		case <-time.After(writeGrace):
			c.stopWriting()
			keepAlive = false
		}
	}
	c.req = nil
	if c.endCancel() {
		keepAlive = false
	}
	if keepAlive && !c.broken && c.br.Buffered() == 0 {
		c.p.put(c)
	} else {
		c.p.closeConn(c)
	}
}

// writeGrace is how long a finished response waits for its request body to
// finish sending before the connection is given up.
const writeGrace = 50 * time.Millisecond

// writeStream sends a streamed body, chunked when n < 0.
// When duplex, it runs on the body goroutine and pushes the response-header
// deadline out as the body flows.
func (t *Transport) writeStream(c *conn, r io.Reader, n int64, duplex bool) (int64, error) {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	var sent int64
	chunked := n < 0
	var hdr [20]byte
	for chunked || sent < n {
		want := buf
		if !chunked && int64(len(want)) > n-sent {
			want = want[:n-sent]
		}
		m, rerr := r.Read(want)
		if m > 0 {
			now := time.Now()
			_ = c.SetWriteDeadline(now.Add(t.cfg.IdleTimeout))
			if duplex && !c.gotHeader.Load() {
				// The response-header timeout counts from the end of the
				// body: while the body flows, push it out.
				_ = c.SetReadDeadline(now.Add(t.cfg.ResponseHeaderTimeout))
			}
			var werr error
			if chunked {
				line := strconv.AppendInt(hdr[:0], int64(m), 16)
				line = append(line, '\r', '\n')
				if _, werr = c.bw.Write(line); werr == nil {
					if _, werr = c.bw.Write(want[:m]); werr == nil {
						_, werr = c.bw.WriteString("\r\n")
					}
				}
			} else {
				_, werr = c.bw.Write(want[:m])
			}
			if werr != nil {
				return sent, writeErr(werr, true, false)
			}
			sent += int64(m)
		}
		if rerr == io.EOF {
			if !chunked && sent < n {
				return sent, &Error{Kind: KindClientBody, Sent: true, Err: io.ErrUnexpectedEOF}
			}
			break
		}
		if rerr != nil {
			return sent, &Error{Kind: KindClientBody, Sent: true, Err: rerr}
		}
	}
	if chunked {
		if _, err := c.bw.WriteString("0\r\n\r\n"); err != nil {
			return sent, writeErr(err, true, false)
		}
	}
	return sent, nil
}

func writeErr(err error, sent, stale bool) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindTimeout, Sent: sent, Err: err}
	}
	return &Error{Kind: KindWrite, Sent: sent, Err: err, stale: stale && !sent}
}

func readErr(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		return &Error{Kind: KindTimeout, Sent: true, Err: err}
	case err == io.EOF:
		// Nothing at all was read: the instance closed the connection.
		return &Error{Kind: KindReset, Sent: true, Err: err, stale: true}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isConnReset(err):
		return &Error{Kind: KindReset, Sent: true, Err: err}
	}
	// Unparsable status line or headers, or a head larger than the read
	// buffer (see readHead).
	return &Error{Kind: KindMalformed, Sent: true, Err: err}
}

// Tunnel is a connection to an instance after it switched protocols: bytes
// both ways, nothing of HTTP. It stays in its pool's busy set, so a retired
// instance's tunnels are cut at the end of the grace (see Retain).
type Tunnel struct {
	c    *conn
	once sync.Once
}

// Read reads what the instance sends, starting with what arrived with
// its 101 response.
func (t *Tunnel) Read(p []byte) (int, error) { return t.c.br.Read(p) }

// Write sends to the instance.
func (t *Tunnel) Write(p []byte) (int, error) { return t.c.Conn.Write(p) }

// CloseWrite half-closes the connection, when it can be.
func (t *Tunnel) CloseWrite() error {
	if cw, ok := t.c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and gives its slot back to the pool.
func (t *Tunnel) Close() error {
	t.once.Do(func() {
		t.c.req = nil
		t.c.p.closeConn(t.c)
	})
	return nil
}
