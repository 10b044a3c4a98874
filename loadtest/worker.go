package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Indexes of the error kinds in kinds.
const (
	kindRefused = iota
	kindTimeout
	kindReset
	kindOther
)

// worker drives one connection. Everything but conn (guarded by connMu
// against abort) belongs to the worker's goroutine.
type worker struct {
	l     *Load
	shard *shard
	rng   *rand.Rand
	timer *time.Timer

	req  fasthttp.Request
	resp fasthttp.Response
	res  Result
	out  outcome

	// With HTTP2 and HTTP3, the connection the worker shares with others
	// and the request it sends; nil with HTTP1.
	mc   *muxConn
	mreq *muxRequest

	connMu sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	nRead  int64 // bytes read and written on the connection, reset per request
	nWrite int64
}

func newWorker(l *Load, s *shard, src rand.Source) *worker {
	p := l.p
	w := &worker{l: l, shard: s, rng: rand.New(src)}
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	if p.Protocol != HTTP1 {
		return w // see newMuxWorker
	}
	w.br = bufio.NewReaderSize(nil, 16<<10)
	w.bw = bufio.NewWriterSize(nil, 16<<10)
	h := &w.req.Header
	h.SetMethod(p.method)
	h.SetRequestURI(p.requestURI)
	h.SetUserAgent("yardload")
	for k, vs := range p.Header {
		if http.CanonicalHeaderKey(k) == "Host" {
			continue // in p.hostHeader
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.SetHost(p.hostHeader)
	if len(p.Body) > 0 {
		w.req.SetBodyRaw(p.Body)
	}
	w.resp.SkipBody = p.method == "HEAD"
	return w
}

// newMuxWorker returns a worker of an HTTP/2 or HTTP/3 run that sends
// req on c.
func newMuxWorker(l *Load, s *shard, src rand.Source, c *muxConn, req *muxRequest) *worker {
	w := newWorker(l, s, src)
	w.mc, w.mreq = c, req
	return w
}

// run claims and sends requests until the run ends.
func (w *worker) run() {
	defer w.closeConn()
	defer context.AfterFunc(w.l.ctx, w.abort)()
	l, p := w.l, w.l.p
	var deadline time.Time
	if p.Duration > 0 {
		deadline = l.start.Add(p.Duration)
	}
	tolerance := lateAfter(p.interval)
	for l.ctx.Err() == nil {
		k := l.next.Add(1) - 1
		if k >= p.limit {
			return
		}
		if p.Rate == 0 {
			now := time.Now()
			if !deadline.IsZero() && !now.Before(deadline) {
				return
			}
			w.send(k, now, now, 0)
			continue
		}
		intended := l.start.Add(intendedAt(k, p.interval))
		now := time.Now()
		if now.Before(intended) {
			// A connection is free before the request is due: any delay
			// from here is the timer's, not the target's, so the request
			// is timed from when it actually leaves.
			if !w.sleepUntil(intended) {
				return
			}
			now = time.Now()
			w.send(k, now, now, 0)
			continue
		}
		// Every connection was busy when the request fell due: it is timed
		// from its intended time, its wait included.
		lateness := now.Sub(intended)
		switch {
		case lateness > p.Timeout:
			w.expire(k, now, lateness)
		case lateness > tolerance && !deadline.IsZero() && !now.Before(deadline):
			return // left waiting at the end: Unsent
		default:
			w.send(k, intended, now, lateness)
		}
	}
}

// sleepUntil waits for t, waking a little early by the timer's recent
// oversleep so that the request leaves close to t. It returns false if the
// run was stopped meanwhile.
func (w *worker) sleepUntil(t time.Time) bool {
	slack := time.Duration(w.l.slack.Load())
	d := time.Until(t) - slack
	if d <= 0 {
		return true
	}
	target := time.Now().Add(d)
	w.timer.Reset(d)
	select {
	case <-w.timer.C:
	case <-w.l.ctx.Done():
		w.timer.Stop()
		return false
	}
	// Shared by all connections, so that it settles within a few sleeps;
	// a lost update between two connections is harmless.
	over := time.Since(target)
	w.l.slack.Store(int64(min(max(slack+(over-slack)/8, 0), 2*time.Millisecond)))
	return true
}

// expire gives up request k and every other request that has waited longer
// than the timeout: a client would have timed them out.
func (w *worker) expire(k int64, now time.Time, lateness time.Duration) {
	l, p := w.l, w.l.p
	n := int64(1)
	first := min(p.limit, firstUnexpired(now.Sub(l.start), p.Timeout, p.Rate))
	for {
		cur := l.next.Load()
		if cur >= first || l.next.CompareAndSwap(cur, first) {
			if cur < first {
				n += first - cur
			}
			break
		}
	}
	w.shard.recordExpired(n, lateness, p.Timeout)
}

// send sends request k, timing it from begin, and records the outcome.
func (w *worker) send(k int64, begin, now time.Time, lateness time.Duration) {
	p := w.l.p
	key := -1
	if len(p.keys) > 0 {
		key = w.rng.IntN(len(p.keys))
		switch {
		case w.mc != nil: // muxRoundTrip sends it
		case p.hosts != nil:
			w.req.Header.SetHostBytes(p.hosts[key])
		default:
			w.req.Header.SetCanonical(p.keyHeader, p.keys[key])
		}
	}
	w.shard.sent.Add(1)
	var (
		retried bool
		err     error
		hresp   *http.Response
	)
	if w.mc != nil {
		hresp, err = w.muxRoundTrip(key, begin.Add(p.Timeout))
		w.nRead += w.mc.read.Swap(0)
		w.nWrite += w.mc.written.Swap(0)
	} else {
		retried, err = w.roundTrip(begin.Add(p.Timeout))
	}
	end := time.Now()

	o := &w.out
	*o = outcome{kind: -1, latency: end.Sub(begin), lateness: lateness, retried: retried,
		late: lateness > lateAfter(p.interval) && p.Rate > 0, bytesSent: w.nWrite, bytesRecv: w.nRead}
	w.nRead, w.nWrite = 0, 0
	switch {
	case err == nil && hresp != nil:
		o.status = hresp.StatusCode
	case err == nil:
		o.status = w.resp.StatusCode()
	case errors.Is(err, errAborted) || w.l.ctx.Err() != nil:
		o.canceled = true
	default:
		o.kind = classify(err)
	}
	w.shard.record(o)
	if p.OnResponse == nil || o.canceled {
		return
	}
	r := &w.res
	*r = Result{Seq: k, Status: o.status, Err: err, Latency: o.latency, resp: &w.resp, hresp: hresp}
	if key >= 0 {
		r.Key = p.Keys[key]
	}
	if err != nil {
		r.Kind = kinds[o.kind]
	}
	p.OnResponse(r)
	r.resp, r.hresp = nil, nil
}

// noResponse marks an error of a reused connection that happened before any
// byte of the response: the server closed the connection while the request
// was on its way. Idempotent requests are retried once on a new connection.
type noResponse struct{ err error }

func (e *noResponse) Error() string { return e.err.Error() }
func (e *noResponse) Unwrap() error { return e.err }

// roundTrip sends w.req and reads w.resp, dialing when needed, until
// deadline.
func (w *worker) roundTrip(deadline time.Time) (retried bool, err error) {
	for attempt := 0; ; attempt++ {
		reused := w.conn != nil
		if !reused {
			if err := w.dial(deadline); err != nil {
				return retried, err
			}
		}
		w.conn.SetDeadline(deadline)
		if w.l.ctx.Err() != nil { // after SetDeadline: see abort
			return retried, errAborted
		}
		err := w.exchange()
		if err == nil {
			if w.resp.ConnectionClose() {
				w.closeConn()
			}
			return retried, nil
		}
		w.closeConn()
		var nr *noResponse
		if attempt == 0 && reused && w.l.p.idempotent && errors.As(err, &nr) && classify(err) == kindReset {
			retried = true
			continue
		}
		return retried, err
	}
}

func (w *worker) exchange() error {
	if err := w.req.Write(w.bw); err != nil {
		return &noResponse{err}
	}
	if err := w.bw.Flush(); err != nil {
		return &noResponse{err}
	}
	if _, err := w.br.Peek(1); err != nil {
		return &noResponse{err}
	}
	return w.resp.Read(w.br)
}

func (w *worker) dial(deadline time.Time) error {
	p := w.l.p
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(w.l.ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	if p.tls != nil {
		tc := tls.Client(c, p.tls)
		if err := tc.HandshakeContext(w.l.ctx); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	cc := &countingConn{Conn: c, w: w}
	w.br.Reset(cc)
	w.bw.Reset(cc)
	w.connMu.Lock()
	w.conn = c
	w.connMu.Unlock()
	return nil
}

func (w *worker) closeConn() {
	w.connMu.Lock()
	c := w.conn
	w.conn = nil
	w.connMu.Unlock()
	if c != nil {
		c.Close()
	}
}

// abort wakes a request blocked on the connection when the run is stopped.
// roundTrip checks the context after setting its own deadline, so either
// it sees the stop or this deadline comes last.
func (w *worker) abort() {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.conn != nil {
		w.conn.SetDeadline(time.Unix(1, 0))
	}
}

// countingConn counts the bytes of a worker's connection.
type countingConn struct {
	net.Conn
	w *worker
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.w.nRead += int64(n)
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.w.nWrite += int64(n)
	return n, err
}

// classify maps a request error to its kind.
func classify(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, fasthttp.ErrConnectionClosed), isMuxReset(err):
		return kindReset
	}
	return kindOther
}
