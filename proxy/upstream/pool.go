package upstream

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/proxy/internal/sockio"
)

// Config configures a Transport. The zero value of every field selects the
// default named in its comment.
type Config struct {
	// ConnectTimeout bounds dialing, and the wait for a free connection
	// slot when MaxConns are open. Default 5s.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is written. Default 60s.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout bounds each read or write of a body. Default 60s.
	IdleTimeout time.Duration
	// IdleConnTimeout closes pooled connections unused this long. Default 30s.
	IdleConnTimeout time.Duration
	// MaxConns bounds open connections per address. Default 512.
	MaxConns int
	// MaxIdleConns bounds pooled idle connections per address. Default 64.
	MaxIdleConns int
	// ReadBufferSize is the per-connection read buffer; response headers
	// must fit in it. Default 16 KiB.
	ReadBufferSize int
	// WriteBufferSize is the per-connection write buffer. Default 16 KiB.
	WriteBufferSize int
	// Dial opens a connection; default a TCP dial with ConnectTimeout.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, 5*time.Second)
	def(&c.ResponseHeaderTimeout, 60*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.IdleConnTimeout, 30*time.Second)
	if c.MaxConns <= 0 {
		c.MaxConns = 512
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = 64
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 16 << 10
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = 16 << 10
	}
	if c.Dial == nil {
		c.Dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, timeout)
		}
	}
}

// Transport holds one connection pool per instance address. It is safe for
// concurrent use.
type Transport struct {
	cfg    Config
	pools  sync.Map // addr -> *pool
	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}

	dials atomic.Uint64
	stale atomic.Uint64
}

// New starts a Transport and its idle-connection reaper. Close stops it.
func New(cfg Config) *Transport {
	cfg.setDefaults()
	t := &Transport{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	go t.reap()
	return t
}

// Close closes every idle connection and stops the reaper. Connections in
// use close when their exchange ends.
func (t *Transport) Close() {
	if t.closed.Swap(true) {
		return
	}
	close(t.stop)
	<-t.done
	t.CloseIdle("")
}

// CloseIdle closes the idle connections to addr, or to every address when
// addr is empty.
func (t *Transport) CloseIdle(addr string) {
	t.pools.Range(func(k, v any) bool {
		if addr == "" || k.(string) == addr {
			v.(*pool).closeIdle(math.MaxInt64)
		}
		return true
	})
}

// Stats counts connections.
type Stats struct {
	Open  int    // open connections, idle or in use
	Idle  int    // idle pooled connections
	Dials uint64 // connections dialled since start
	// Stale counts the reused connections found to have bytes waiting, or
	// to have been closed by the instance, when taken for a request, since
	// start: each was closed unused and the request went on a new one.
	Stale uint64
}

// Stats returns connection counts, for addr or for every address when addr
// is empty.
func (t *Transport) Stats(addr string) Stats {
	var s Stats
	t.pools.Range(func(k, v any) bool {
		if addr == "" || k.(string) == addr {
			p := v.(*pool)
			p.mu.Lock()
			s.Open += p.open
			s.Idle += len(p.idle)
			p.mu.Unlock()
		}
		return true
	})
	s.Dials = t.dials.Load()
	s.Stale = t.stale.Load()
	return s
}

func (t *Transport) reap() {
	defer close(t.done)
	every := t.cfg.IdleConnTimeout / 2
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			now := monoNow()
			cutoff := now - int64(t.cfg.IdleConnTimeout)
			t.pools.Range(func(k, v any) bool {
				p := v.(*pool)
				p.closeIdle(cutoff)
				// Forget pools of addresses unused for a long time (instances
				// that left the table).
				if p.unusedSince(now) > 10*t.cfg.IdleConnTimeout {
					t.pools.Delete(k)
				}
				return true
			})
		}
	}
}

func (t *Transport) pool(addr string) *pool {
	if v, ok := t.pools.Load(addr); ok {
		return v.(*pool)
	}
	v, _ := t.pools.LoadOrStore(addr, &pool{addr: addr, t: t})
	return v.(*pool)
}

// conn is one connection to an instance.
type conn struct {
	net.Conn
	br        *bufio.Reader
	sr        *sockio.Reader // under br; nil when not a socket
	bw        *bufio.Writer
	out       countingWriter // under bw: counts bytes that reached the socket
	p         *pool
	idleSince int64 // monoNow
	busyAt    int   // index in p.busy; -1 when not in use
	rd        readDeadline

	// rc is the socket, for requests sent with sendAwait; nil when the
	// connection is not a socket (tests dial pipes).
	rc      syscall.RawConn
	awaitFn func(fd uintptr) bool // c.awaitStep, bound once
	peekFn  func(fd uintptr)      // c.peekStep, bound once
	wbuf    []byte                // the request being sent by sendAwait
	await   awaitState

	// Set during one exchange.
	req       *Request
	writing   bool             // a body goroutine is running
	broken    bool             // not reusable whatever the response says
	gotHeader atomic.Bool      // response headers have been read
	wdone     chan writeResult // the body goroutine's result
	// stopCancel ends the watch of the request's Context (see
	// Request.Context); nil when it has none.
	stopCancel func() bool
}

type pool struct {
	addr string
	t    *Transport

	mu       sync.Mutex
	idle     []*conn // oldest first; taken from the end
	open     int     // idle + in use + dialing
	busy     []*conn // in use; each knows its index (conn.busyAt)
	wake     chan struct{}
	lastUsed atomic.Int64 // monoNow

	// retired: the instance left service; connections close instead of
	// going back to the pool, and busy ones are cut after a grace period.
	retired  atomic.Bool
	cutTimer *time.Timer
}

// unusedSince reports how long the pool has had no connection, at now
// (monoNow).
func (p *pool) unusedSince(now int64) time.Duration {
	p.mu.Lock()
	busy := p.open > 0
	p.mu.Unlock()
	if busy {
		return 0
	}
	return time.Duration(now - p.lastUsed.Load())
}

// signalLocked wakes every goroutine waiting for a slot or an idle conn.
func (p *pool) signalLocked() {
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// get returns an idle connection (reused true) or dials a new one. fresh
// skips idle connections. now is the time of the call (monoNow).
func (p *pool) get(fresh bool, now int64) (c *conn, reused bool, err error) {
	cfg := &p.t.cfg
	p.lastUsed.Store(now)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if p.t.closed.Load() {
			return nil, false, ErrTransportClosed
		}
		p.mu.Lock()
		if n := len(p.idle); n > 0 && !fresh {
			c = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			if time.Duration(now-c.idleSince) > cfg.IdleConnTimeout {
				p.mu.Unlock()
				p.closeConn(c)
				continue
			}
			p.busyLocked(c)
			p.mu.Unlock()
			return c, true, nil
		}
		if p.open < cfg.MaxConns {
			p.open++
			p.mu.Unlock()
			c, err = p.dial()
			if err != nil {
				p.mu.Lock()
				p.open--
				p.signalLocked()
				p.mu.Unlock()
				return nil, false, err
			}
			p.markBusy(c)
			return c, false, nil
		}
		if fresh && len(p.idle) > 0 {
			// Make room for a fresh connection.
			old := p.idle[0]
			p.idle = append(p.idle[:0], p.idle[1:]...)
			p.mu.Unlock()
			p.closeConn(old)
			continue
		}
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(cfg.ConnectTimeout)
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, false, &Error{Kind: KindPoolTimeout, Err: ErrPoolExhausted}
		}
	}
}

func (p *pool) dial() (*conn, error) {
	cfg := &p.t.cfg
	nc, err := cfg.Dial(p.addr, cfg.ConnectTimeout)
	if err != nil {
		kind := KindConnectRefused
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			kind = KindConnectTimeout
		}
		return nil, &Error{Kind: kind, Err: err}
	}
	p.t.dials.Add(1)
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &conn{
		Conn:   nc,
		p:      p,
		busyAt: -1,
		wdone:  make(chan writeResult, 1),
	}
	var r io.Reader = nc
	if sr := sockio.NewReader(nc); sr != nil {
		sr.OnTimeout = c.readExpired
		c.rd.lazy = true
		c.sr = sr
		r = sr
	}
	c.br = bufio.NewReaderSize(r, cfg.ReadBufferSize)
	c.bw = bufio.NewWriterSize(&c.out, cfg.WriteBufferSize)
	c.out.w = nc
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.awaitFn = c.awaitStep
			c.peekFn = c.peekStep
		}
	}
	return c, nil
}

func (p *pool) markBusy(c *conn) {
	p.mu.Lock()
	p.busyLocked(c)
	p.mu.Unlock()
}

// busyLocked adds c to the connections in use.
func (p *pool) busyLocked(c *conn) {
	c.busyAt = len(p.busy)
	p.busy = append(p.busy, c)
}

// unbusyLocked removes c from the connections in use, if it is there.
func (p *pool) unbusyLocked(c *conn) {
	i := c.busyAt
	if i < 0 || i >= len(p.busy) || p.busy[i] != c {
		return
	}
	last := len(p.busy) - 1
	p.busy[i] = p.busy[last]
	p.busy[i].busyAt = i
	p.busy[last] = nil
	p.busy = p.busy[:last]
	c.busyAt = -1
}

// put returns a healthy connection to the pool, or closes it when the pool
// is full or the transport closed.
func (p *pool) put(c *conn) {
	if p.t.closed.Load() || p.retired.Load() {
		p.closeConn(c)
		return
	}
	now := monoNow()
	p.lastUsed.Store(now)
	p.mu.Lock()
	if len(p.idle) >= p.t.cfg.MaxIdleConns {
		p.mu.Unlock()
		p.closeConn(c)
		return
	}
	p.unbusyLocked(c)
	c.idleSince = now
	p.idle = append(p.idle, c)
	p.signalLocked()
	p.mu.Unlock()
}

// clockBase is the origin of monoNow.
var clockBase = time.Now()

// monoNow returns the monotonic clock in nanoseconds since clockBase: one
// clock read, where time.Now makes two (the wall clock too). The pools
// keep their times in it.
func monoNow() int64 { return int64(time.Since(clockBase)) }

// monoOf returns t, which carries a monotonic reading, as monoNow would
// have at t, without reading the clock.
func monoOf(t time.Time) int64 { return int64(t.Sub(clockBase)) }

func (p *pool) closeConn(c *conn) {
	c.endCancel()
	_ = c.Conn.Close()
	p.mu.Lock()
	p.unbusyLocked(c)
	p.open--
	p.signalLocked()
	p.mu.Unlock()
}

// closeIdle closes the connections idle since before cutoff (monoNow);
// math.MaxInt64 closes them all.
func (p *pool) closeIdle(cutoff int64) {
	p.mu.Lock()
	var victims []*conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if c.idleSince < cutoff {
			victims = append(victims, c)
		} else {
			keep = append(keep, c)
		}
	}
	for i := len(keep); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range victims {
		p.closeConn(c)
	}
}

// isConnReset reports errors that mean the peer closed the connection.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// Retain marks the addresses for which active is true as in service and
// every other address as retired: a retired instance's idle connections
// close at once, its busy ones close when their exchange ends, and those
// still busy after grace (long downloads, streams) are cut. An address
// that comes back into service is pooled again.
func (t *Transport) Retain(active func(addr string) bool, grace time.Duration) {
	t.pools.Range(func(k, v any) bool {
		if p := v.(*pool); active(k.(string)) {
			p.revive()
		} else {
			p.retire(grace)
		}
		return true
	})
}

// Update is Retain for a change: the addresses of retired go out of
// service and those of revived come back, and every other address keeps
// its state. Its cost is that of the addresses given.
func (t *Transport) Update(retired, revived []string, grace time.Duration) {
	for _, addr := range retired {
		if v, ok := t.pools.Load(addr); ok {
			v.(*pool).retire(grace)
		}
	}
	for _, addr := range revived {
		if v, ok := t.pools.Load(addr); ok {
			v.(*pool).revive()
		}
	}
}

// revive puts p's address back in service.
func (p *pool) revive() {
	if p.retired.Swap(false) {
		p.mu.Lock()
		if p.cutTimer != nil {
			p.cutTimer.Stop()
			p.cutTimer = nil
		}
		p.mu.Unlock()
	}
}

// retire takes p's address out of service: its idle connections close,
// and the busy ones are cut after grace.
func (p *pool) retire(grace time.Duration) {
	if p.retired.Swap(true) {
		return // already retired; its grace runs
	}
	p.closeIdle(math.MaxInt64)
	p.mu.Lock()
	if len(p.busy) > 0 {
		p.cutTimer = time.AfterFunc(grace, p.cutBusy)
	}
	p.mu.Unlock()
}

// cutBusy closes the connections of a retired instance still busy after
// the grace period. Their exchanges fail; the clients see their streams
// end.
func (p *pool) cutBusy() {
	if !p.retired.Load() {
		return
	}
	p.mu.Lock()
	victims := slices.Clone(p.busy)
	p.cutTimer = nil
	p.mu.Unlock()
	for _, c := range victims {
		_ = c.Conn.Close() // the exchange that owns c closes it properly
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
