package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/proxy/internal/sockio"
	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

var strHealthPath = []byte("/_health")

// exchange is the state of one request. It comes from a pool; when the
// response has a streamed body, the exchange is that body's reader and
// lives until fasthttp closes it.
type exchange struct {
	s     *Server
	start time.Time

	idBuf   [requestIDLen]byte
	keyBuf  [maxKeyLen]byte
	ipBuf   [64]byte
	peerBuf [64]byte
	// preBuf holds the start of a chunked request body (firstChunk); made
	// at the first use, and kept with the pooled exchange.
	preBuf  []byte
	scratch []byte
	xffBuf  []byte

	// The front end's side of the exchange, and the request and response
	// headers: the client's request, made the instance's by the stages,
	// and the instance's response, made the client's by forward.
	fe   frontEnd
	fast fastClient // fe of the fasthttp server, kept here
	req  *head.Request
	resp *head.Response

	id     []byte     // the request ID (in idBuf)
	sc     reqScan    // what the header lines hold (framing stage)
	peer   netip.Addr // the TCP peer
	client clientAddr // the client, found once (client stage)
	// clientClose: the client asked to close the connection.
	clientClose bool
	st          *tableState // the table the request is routed by
	dep         *routes.Deployment
	inst        *routes.Instance
	upgrade     []byte // the Upgrade header of an upgrade request or 101
	upgradeHead []byte // the 101 to write, for a tunnel
	tried       [maxTries]*routes.Instance
	clientIP    []byte

	ureq  upstream.Request
	uresp upstream.Response
	ubody *upstream.Body
	// trackEnd is the instance whose request the balancer still counts
	// as outstanding while its response body streams (Picker.End when
	// the body ends), with the deployment it was picked for (a retry may
	// have moved to a newer table's) and the outcome its headers gave.
	trackEnd     *routes.Instance
	trackDep     *routes.Deployment
	trackOutcome zones.Outcome
	cbody        clientBody
	conn         readDeadliner // the client's connection, or what sets its read deadline

	status   int
	reason   reason
	bytesIn  int64
	bytesOut int64
	backend  time.Duration

	entry accesslog.Entry
}

// serve handles the request with id: the stages, then the forward. It
// says how the front end delivers the response.
func (x *exchange) serve(id []byte) delivery {
	x.id = id
	for i := range stages {
		if !stages[i].run(x) {
			return deliverHeaders // answered by the stage
		}
	}
	return x.forward()
}

// forward sends the request to the instance picked, with retries, and
// sets the response up: its headers, and a body streamed by x, or none, or
// a tunnel. A failed exchange gets the proxy's own response.
func (x *exchange) forward() delivery {
	s, id := x.s, x.id
	x.uresp = upstream.Response{Header: x.resp}
	err := x.roundTrip(x.st, x.dep, x.inst)
	in, d := x.inst, x.dep
	if err != nil {
		x.countBodyIn() // a body goroutine has been stopped
		x.resp.Reset()
		r := classify(err)
		if x.ureq.BodyStream != nil || r == reasonClientClosed {
			// The rest of the request body is unread: the connection
			// cannot carry another request.
			x.fe.setClose()
			if r != reasonClientClosed && r != reasonClientTimeout {
				x.cbody.linger()
			}
		}
		s.log.Debug("upstream exchange failed", "instance", in.ID, "addr", in.Addr, "error", err)
		x.own(r)
		return deliverHeaders
	}
	x.backend = x.uresp.Received.Sub(x.uresp.Sent)
	s.metrics.upstreamDuration.Observe(x.backend.Seconds())
	s.progress.responseArrived(x.uresp.Received)

	rh := x.resp
	rh.ResetConnectionClose()
	if t := x.uresp.Tunnel; t != nil {
		x.upgrade = append(x.upgrade[:0], rh.Peek(hdrUpgrade)...)
	}
	stripHopResponse(rh, &x.scratch)
	if t := x.uresp.Tunnel; t != nil {
		rh.Set("Connection", "Upgrade")
		rh.SetBytesV(hdrUpgrade, x.upgrade)
		setHandling(rh, id, d, in)
		x.status = rh.StatusCode()
		// A copy of its own: the tunnel writes it after x is finished.
		x.upgradeHead = append([]byte(nil), rh.AppendBytes(nil)...)
		return deliverTunnel
	}
	rh.SetNoDefaultContentType(true)
	if x.clientClose || s.draining.Load() || x.uresp.BodyPending {
		rh.SetConnectionClose()
	}
	setHandling(rh, id, d, in)
	x.announceHTTP3(rh)
	x.status = rh.StatusCode()
	if x.uresp.Body == nil {
		x.countBodyIn()       // the connection was released: a body goroutine ended
		return deliverHeaders // HEAD, 204, 304: headers only
	}
	x.ubody = x.uresp.Body
	return deliverBody
}

// roundTrip sends the request to in and, when that fails in a way that
// allows it (see retryable), to other instances: up to maxTries in all,
// within the retry budget. x.inst is the instance of the last attempt.
// Each attempt is counted in st.gens, when its instance has a counter.
func (x *exchange) roundTrip(st *tableState, d *routes.Deployment, in *routes.Instance) error {
	s := x.s
	gens := st.gens
	tried := x.tried[:0]
	retry, charged := false, false
	for {
		x.inst = in
		if retry {
			s.metrics.retries.Inc()
			x.resp.Reset()
		}
		s.cfg.Picker.Begin(d, in)
		err := s.transport.RoundTrip(in.Addr, &x.ureq, &x.uresp)
		o := outcome(err, x.resp.StatusCode())
		if err == nil && x.uresp.Body != nil {
			// Outstanding until the body has been sent: see
			// CloseWithError.
			x.trackEnd, x.trackDep, x.trackOutcome = in, d, o
		} else {
			s.cfg.Picker.End(d, in, o)
		}
		if c := gens[in]; c != nil {
			c.add(o)
		}
		if charged {
			s.budget.release()
			charged = false
		}
		if err == nil {
			return nil
		}
		if ue, ok := upstream.AsError(err); ok && ue.Kind != upstream.KindClientBody {
			s.metrics.upstreamErrors[ue.Kind].Inc()
		}
		tried = append(tried, in)
		if len(tried) >= maxTries || !retryable(err, &x.ureq) {
			return err
		}
		// A retry follows the newest table: when a cutover took the
		// instance out of service meanwhile, the others are in it.
		if cur := s.state.Load(); cur != st {
			if nd := cur.table.Lookup([]byte(d.ID)); nd != nil {
				st, d, gens = cur, nd, cur.gens
			}
		}
		next := s.cfg.Picker.PickOther(d, tried)
		if next == nil {
			return err
		}
		if chargesBudget(err, len(tried)) {
			if !s.budget.acquire() {
				s.metrics.retryBudgetExhausted.Inc()
				return err
			}
			charged = true
		}
		s.log.Debug("retrying on another instance", "failed", in.ID, "next", next.ID, "error", err)
		in, retry = next, true
	}
}

// countBodyIn records how much of a streamed request body was read from
// the client. Only once the goroutine that sends it has ended: while the
// response streams, the instance may still be reading the request.
func (x *exchange) countBodyIn() {
	if x.ureq.BodyStream != nil {
		x.bytesIn = x.cbody.n
	}
}

// setHandling adds the headers that tell the client which request this
// was and which deployment and instance answered it.
func setHandling(rh *head.Response, id []byte, d *routes.Deployment, in *routes.Instance) {
	rh.SetCanonical(strRequestID, id)
	rh.SetCanonical(strHandlingCluster, bytesOf(d.ID))
	rh.SetCanonical(strHandlingInstance, bytesOf(in.ID))
}

// own sets the proxy's own response for r.
func (x *exchange) own(r reason) {
	x.reason = r
	o := &ownResponses[r]
	x.fe.respond(o.status, o.body)
	x.announceHTTP3(x.resp)
	x.bytesOut = int64(len(o.body))
}

// Read streams the instance's response body to the client. (A client that
// stops reading is cut by its connection's write idle limit: see
// clientconn.)
func (x *exchange) Read(p []byte) (int, error) {
	n, err := x.ubody.Read(p)
	x.bytesOut += int64(n)
	if n > 0 {
		x.s.progress.bodyMoved()
	}
	return n, err
}

// ReadPipe moves the response body into a pipe (sockio.PipeReader), for
// the client connection to splice it to the client.
func (x *exchange) ReadPipe(p *sockio.Pipe, most int) (int, error) {
	n, err := x.ubody.ReadPipe(p, most)
	x.bytesOut += int64(n)
	if n > 0 {
		x.s.progress.bodyMoved()
	}
	return n, err
}

// CloseWithError is called by fasthttp once the body is written, or
// writing it failed with werr.
func (x *exchange) CloseWithError(werr error) error {
	b := x.ubody
	x.ubody = nil
	if b == nil {
		return nil
	}
	complete, uerr := b.Complete(), b.Err()
	_ = b.Close()
	x.countBodyIn() // Close ended a body goroutine still running
	if !complete {
		switch {
		case uerr != nil:
			x.reason = reasonUpstreamBody
			x.s.log.Debug("instance failed mid-body", "instance", x.inst.ID, "error", uerr)
		case werr != nil:
			x.reason, x.status = reasonClientClosed, 499
		}
	}
	if in := x.trackEnd; in != nil {
		o := x.trackOutcome
		if !complete && uerr != nil && o == zones.OutcomeSuccess {
			o = outcome(uerr, 0) // the instance failed mid-body
		}
		d := x.trackDep
		x.trackEnd, x.trackDep = nil, nil
		x.s.cfg.Picker.End(d, in, o)
	}
	x.finish()
	return nil
}

// finish records the request in metrics and the access log and returns x
// to the pool.
func (x *exchange) finish() {
	s := x.s
	total := time.Since(x.start)
	if x.reason == reasonClientClosed {
		x.status = 499
	}
	depID := ""
	if x.dep != nil {
		depID = x.dep.ID
	}
	s.metrics.observe(x.status, x.fe.protocol(), depID, total)
	s.metrics.inFlight.Dec()
	s.budget.active.Add(-1)

	e := &x.entry
	*e = accesslog.Entry{
		Time:                x.start,
		RequestID:           x.idBuf[:],
		ClientIP:            x.clientIP,
		HandlingCluster:     depID,
		StatusCode:          x.status,
		StatusReason:        x.reason.String(),
		ResponseTime:        total,
		BackendResponseTime: x.backend,
		BytesIn:             x.bytesIn,
		BytesOut:            x.bytesOut,
	}
	if x.inst != nil {
		e.HandlingInstance, e.AvailabilityZones = x.inst.ID, x.inst.Zone
	}
	e.Method, e.Host, e.Path = x.req.Method(), x.req.Host(), x.req.RequestURI()
	x.logConn(e)
	if e.ClientIP == nil {
		if a := x.fe.peer(); a.IsValid() {
			e.ClientIP = a.AppendTo(x.ipBuf[:0])
		}
	}
	s.alog.Log(e)

	scratch, xff, upg, pre := x.scratch[:0], x.xffBuf[:0], x.upgrade[:0], x.preBuf
	*x = exchange{scratch: scratch, xffBuf: xff, upgrade: upg, preBuf: pre}
	s.exPool.Put(x)
}

// firstChunk reads the start of a chunked request body before the
// instance is contacted, so that broken chunk framing at its start (a size
// that is not hex, or too large) is refused with nothing sent on, as the
// rest of a malformed request is. A body that ends within that read is
// sent with a Content-Length, like any short body. It returns false when
// the request has been answered.
func (x *exchange) firstChunk() bool {
	b := &x.cbody
	if x.preBuf == nil {
		x.preBuf = make([]byte, 4<<10)
	}
	n, err := b.Read(x.preBuf)
	switch {
	case err == io.EOF:
		x.ureq.BodyStream, x.ureq.Body = nil, x.preBuf[:n]
		x.bytesIn = int64(n)
		return true
	case err != nil:
		x.bytesIn = b.n
		r := classify(&upstream.Error{Kind: upstream.KindClientBody, Err: err})
		x.fe.setClose()
		if r == reasonBodyTooLarge || r == reasonBadRequest {
			b.linger()
		}
		x.own(r)
		return false
	}
	b.pre = x.preBuf[:n]
	return true
}

// readDeadliner sets the read deadline of a client's connection: a
// net.Conn, or net/http's ResponseController.
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

// clientBody reads a streamed request body from the client, extending the
// client's read deadline as data flows and enforcing MaxBodyBytes.
type clientBody struct {
	pre      []byte // read already (firstChunk): Read returns it first
	r        io.Reader
	conn     readDeadliner
	idle     time.Duration
	max      int64
	n        int64
	deadline time.Time
}

func (b *clientBody) Read(p []byte) (int, error) {
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		return n, nil
	}
	if now := time.Now(); b.conn != nil && b.deadline.Sub(now) < b.idle*7/8 {
		b.deadline = now.Add(b.idle)
		_ = b.conn.SetReadDeadline(b.deadline)
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		return n, errBodyTooLarge
	}
	return n, err
}

// Lingering drain bounds: how much of an unwanted request body is read and
// discarded, and for how long, before an early error response is written.
const (
	lingerBytes = 8 << 20
	lingerTime  = 2 * time.Second
	// parseErrorLinger is shorter: the rest of a request that failed to
	// parse is already in flight, and a keep-alive client sends nothing more.
	parseErrorLinger = 100 * time.Millisecond
)

// linger reads and discards what the client is still sending, within
// bounds, so that the client finishes its upload and reads the error
// response instead of getting a reset when the connection closes with
// unread data (the lingering close of nginx and HAProxy).
func (b *clientBody) linger() {
	if b.r == nil || b.conn == nil {
		return
	}
	_ = b.conn.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(b.r, lingerBytes))
}

// Interrupt makes a Read blocked on the client return (upstream.Interrupter).
func (b *clientBody) Interrupt() {
	if b.conn != nil {
		_ = b.conn.SetReadDeadline(time.Now())
	}
}

// writeHealth answers /_health: 200 once a table is loaded, 502 before that
// and while draining.
func (x *exchange) writeHealth() {
	status, body := http.StatusOK, healthOK
	if x.s.state.Load() == nil || x.s.draining.Load() {
		status, body = http.StatusBadGateway, healthDown
	}
	x.fe.respond(status, body)
	x.announceHTTP3(x.resp)
	x.bytesOut = int64(len(body))
}

// announceHTTP3 adds the Alt-Svc header that announces HTTP/3 to a
// response over TLS, when the proxy serves HTTP/3.
func (x *exchange) announceHTTP3(rh *head.Response) {
	if a := x.s.altSvc; a != nil && x.fe.tls() {
		rh.SetCanonical(strAltSvc, a)
	}
}
