package proxy

import (
	"bytes"

	"github.com/switchyard/switchyard/proxy/upstream"
)

// stage is one step of the request path. run returns false when the
// stage answered the request itself (x.own, or the health answer); the
// stages after it and the forward do not run.
type stage struct {
	name string
	run  func(x *exchange) bool
}

// stages are the steps every request goes through, in order, before it is
// forwarded (exchange.forward: round trip with retries, response headers,
// status mapping). Adding a step (a rate limit, a header rule) is one
// method and one line here. Each stage reads what the ones before it left
// in the exchange.
var stages = [...]stage{
	{"health", (*exchange).health},          // /_health is the proxy's own
	{"framing", (*exchange).framing},        // ambiguous or malformed: 400, CONNECT: 405
	{"client", (*exchange).findClient},      // the client address, once
	{"route", (*exchange).route},            // table, route key, lookup: 503, 404
	{"filter", (*exchange).filter},          // the deployment's traffic filter: 403
	{"pick", (*exchange).pick},              // an instance: 503
	{"body", (*exchange).body},              // the body limit (413), in memory or streamed
	{"headers", (*exchange).forwardHeaders}, // hop-by-hop out, forwarded headers in
}

// health answers /_health (see writeHealth).
func (x *exchange) health() bool {
	if !bytes.Equal(x.fe.path(), strHealthPath) {
		return true
	}
	x.writeHealth()
	x.reason = reasonHealth
	return false
}

// framing refuses what the parser let through and the proxy must not
// forward: CONNECT, ambiguous framing, a bad request line or Host, and
// route keys that disagree. One pass over the header lines as received
// (reqScan) serves this stage and the later ones.
func (x *exchange) framing() bool {
	h := x.req
	x.sc = scanRequest(h.RawHeaders())
	r := reasonNone
	switch {
	case h.IsConnect():
		r = reasonMethodNotAllowed // the proxy opens no tunnels to hosts a client names
	case framingError(h, &x.sc) || targetError(h):
		r = reasonBadRequest
	case x.sc.n[cntFoundCluster] > 1 && !sameValues(h, strLowerFoundCluster):
		// Two X-Found-Cluster headers that name different deployments:
		// which one counts would be the proxy's guess, and the
		// instance's another.
		r = reasonBadRequest
	default:
		return true
	}
	x.own(r)
	x.fe.setClose()
	return false
}

// findClient finds the client address (clientOf), which the filter, the
// forwarded headers and the access log all use.
func (x *exchange) findClient() bool {
	x.peer = x.fe.peer()
	x.client = clientOf(x.req, &x.sc, x.peer, x.s.cfg.TrustedProxies, &x.xffBuf, x.ipBuf[:])
	x.clientIP = x.client.text
	return true
}

// route finds the request's deployment: the table, the route key, the
// lookup.
func (x *exchange) route() bool {
	st := x.s.state.Load()
	if st == nil {
		x.own(reasonNoTable)
		return false
	}
	x.st = st
	h := x.req
	key := routeKey(x.keyBuf[:], h.Peek(hdrFoundCluster), h.Host(), st.suffix)
	if key == nil {
		x.own(reasonUnknownResource)
		return false
	}
	if x.dep = st.table.Lookup(key); x.dep == nil {
		x.own(reasonUnknownResource)
		return false
	}
	return true
}

// filter applies the deployment's traffic filter to the client address.
func (x *exchange) filter() bool {
	if d := x.dep; len(d.AllowNets) == 0 || d.Allows(x.client.addr) {
		return true
	}
	x.s.metrics.forbidden.Inc()
	x.own(reasonForbidden)
	return false
}

// pick chooses the instance of the first attempt.
func (x *exchange) pick() bool {
	if x.inst = x.s.cfg.Picker.Pick(x.dep); x.inst == nil {
		x.own(reasonUnavailable)
		return false
	}
	return true
}

// body applies the body limit and sets the body up: held in memory when
// short and of known length (and then replayable), else streamed from
// the client; a chunked body's start is read first (firstChunk).
func (x *exchange) body() bool {
	s, h := x.s, x.req
	cl := h.ContentLength()
	if max := s.cfg.MaxBodyBytes; max > 0 && int64(cl) > max {
		x.own(reasonBodyTooLarge)
		x.fe.setClose()
		x.cbody = clientBody{r: x.fe.bodyStream(), conn: x.fe.conn()}
		x.cbody.linger()
		return false
	}
	x.conn = x.fe.conn()
	x.ureq = upstream.Request{Header: h, Context: x.fe.context()}
	stream := x.fe.bodyStream()
	if cl == -2 || (cl == -1 && stream == nil) {
		cl = 0 // no framing: a request without a body
	}
	if cl >= 0 && cl <= prefetchBytes {
		if cl > 0 {
			x.ureq.Body = x.fe.bodyBytes()
		}
		x.bytesIn = int64(len(x.ureq.Body))
		return true
	}
	x.cbody = clientBody{r: stream, conn: x.conn, idle: s.cfg.ClientIdleTimeout, max: s.cfg.MaxBodyBytes}
	x.ureq.BodyStream, x.ureq.BodyLen = &x.cbody, int64(cl)
	return cl != -1 || x.firstChunk()
}

// forwardHeaders turns the client's headers into the instance's: hop-by-hop
// headers out (an upgrade keeps its two), HTTP/1.1, the forwarded headers,
// the request ID, one X-Found-Cluster.
func (x *exchange) forwardHeaders() bool {
	h := x.req
	// The client's Connection: close is read again by forward, for the
	// response; it is not sent on.
	x.clientClose = h.ConnectionClose()
	h.ResetConnectionClose()
	// An Upgrade (WebSocket) request keeps its two hop-by-hop headers:
	// the instance must see them to switch protocols.
	upgrade := h.ConnectionUpgrade() && h.IsGet() && x.ureq.BodyStream == nil && len(x.ureq.Body) == 0
	if upgrade {
		x.upgrade = append(x.upgrade[:0], h.Peek(hdrUpgrade)...)
		upgrade = len(x.upgrade) > 0
	}
	stripHopRequest(h, x.sc.hop, &x.scratch)
	if upgrade {
		h.Set("Connection", "Upgrade")
		h.SetBytesV(hdrUpgrade, x.upgrade)
		x.ureq.Upgrade = true
	}
	h.SetProtocol("HTTP/1.1")
	h.SetNoDefaultContentType(true)
	setForwarded(h, &x.sc, &x.client, x.peer, x.fe.tls(), x.peerBuf[:])
	if x.sc.n[cntRequestID] > 1 {
		h.DelBytes(strRequestID)
	}
	h.SetCanonical(strRequestID, x.id)
	if x.sc.n[cntFoundCluster] > 1 {
		keepOne(h, strFoundCluster, &x.scratch)
	}
	return true
}
