// Package clientconn wraps the proxy's client connections to save two
// kinds of work per keep-alive request that net.TCPConn always does:
//
//   - The read that finds nothing. After a response is written, the next
//     Read would first try read(2), which on a keep-alive connection finds
//     the socket empty (the client has only just been sent its answer),
//     returns EAGAIN, and only then waits. Here that Read waits first, for
//     a bounded time (hotWait to twice that), and reads once the socket is
//     readable.
//   - Deadline timers that never fire. The server sets read deadlines for
//     every request, each a timer update in the runtime. Here
//     a deadline moved later is only recorded, and applied when an
//     operation is about to block (or when an earlier one expired); one
//     moved earlier, or in the past (to interrupt a blocked call), is
//     applied at once.
//   - Clock reads for the write timeout. A response is bounded by how long
//     its writes may make no progress (the write idle limit given to
//     Listen), which the Conn enforces itself: the clock is read only
//     when a write finds the socket's send buffer full, not for every
//     response and every chunk of a streamed body.
//
// The wait-first read relies on the client sending nothing between the
// last read and the next request, which HTTP/1.1 clients do unless they
// pipeline. The poller's readiness is reset when the wait begins, so data
// that arrived earlier is not announced: the wait then ends by its bound and
// the read finds the data. After maxMisses such waits in a row (one can
// also come from a scheduler too busy to run the reader within hotWait)
// the connection is taken for a pipelining one and read the ordinary way
// from then on. A connection whose client was idle longer than the wait
// is read the ordinary way until it turns around fast again, so idle
// keep-alive connections pay nothing extra.
package clientconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/sockio"
)

// hotWait bounds the first wait of a Read that skipped the read(2): it
// lasts between hotWait and 2×hotWait (see armHotWait). That is the extra
// latency a pipelining client sees up to maxMisses times per connection,
// and the idle time after which a connection is read the ordinary way.
const hotWait = 10 * time.Millisecond

// maxMisses is how many hot waits in a row may expire with data already
// there before a connection is taken for a pipelining one.
const maxMisses = 3

// Listen wraps ln so that its TCP connections are Conns with the write
// idle limit writeIdle (see New) that copy streamed bodies in writes of
// up to copySize bytes (see ReadFrom; DefaultCopySize when 0 or less).
func Listen(ln net.Listener, writeIdle time.Duration, copySize int) net.Listener {
	return listener{ln, writeIdle, copyPool(copySize)}
}

type listener struct {
	net.Listener
	writeIdle time.Duration
	copyBufs  *sync.Pool
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if cc := newConn(tc, l.writeIdle, l.copyBufs); cc != nil {
			return cc, nil
		}
	}
	return c, nil
}

// Conn is a client connection. It is a net.Conn, and an io.ReaderFrom
// that copies through Write in large chunks.
type Conn struct {
	tc      *net.TCPConn
	rc      syscall.RawConn
	readFn  func(fd uintptr) bool // c.readStep, bound once
	writeFn func(fd uintptr) bool // c.writeStep, bound once

	rmu   sync.Mutex // one Read at a time; guards the read state below
	rp    []byte
	rn    int
	rerr  error
	calls int  // callback calls in this Read
	skip  bool // this Read waits before reading (the hot wait)
	block bool // this Read waited for readability
	// cold: the client was idle longer than hotWait after the last
	// response: read the ordinary way. pipelined: data came unannounced
	// once: always read the ordinary way.
	cold, pipelined bool
	misses          int // hot waits in a row that expired with data there

	writeIdle time.Duration
	copyBufs  *sync.Pool // ReadFrom's buffers

	wmu  sync.Mutex // one Write at a time; guards the write state below
	wp   []byte
	wn   int
	werr error
	// The write idle limit of this Write: unix nanoseconds (0 until it
	// first blocks), and as a time.
	wIdle  int64
	wIdleT time.Time

	// wrote: a Write ended since the last Read began.
	wrote atomic.Bool

	// Deadlines in unix nanoseconds, 0 for none: what the caller set
	// (want) and what the socket has (set). set is never later than want.
	dmu          sync.Mutex
	rWant, rSet  int64
	wWant, wSet  int64
	rTime, wTime time.Time // want as a time, to apply it
}

// New wraps tc; nil when its socket cannot be reached. With writeIdle > 0
// a Write fails with a timeout once it has been unable to write anything
// for writeIdle; the write deadline (SetWriteDeadline) applies as well.
// ReadFrom copies in pieces of DefaultCopySize.
func New(tc *net.TCPConn, writeIdle time.Duration) *Conn {
	return newConn(tc, writeIdle, copyPool(0))
}

func newConn(tc *net.TCPConn, writeIdle time.Duration, copyBufs *sync.Pool) *Conn {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{tc: tc, rc: rc, writeIdle: writeIdle, copyBufs: copyBufs}
	c.readFn, c.writeFn = c.readStep, c.writeStep
	return c
}

// Read reads like net.TCPConn.Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	afterWrite := c.wrote.Swap(false)
	hot := afterWrite && !c.cold && !c.pipelined
	c.rp, c.rn, c.rerr, c.calls, c.skip, c.block = p, 0, nil, 0, hot, false
	defer func() { c.rp = nil }()
	var start time.Time
	if hot {
		c.armHotWait()
	} else if afterWrite && c.cold {
		start = time.Now()
	}
	for {
		err := c.rc.Read(c.readFn)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, c.opError("read", err)
		}
		// A deadline passed: the caller's, or one applied before the
		// caller moved it later, or the hot wait's.
		if !c.extend(&c.rWant, &c.rSet, &c.rTime, c.tc.SetReadDeadline) {
			return 0, c.opError("read", err)
		}
		if c.skip {
			// The hot wait ended with nothing announced: the client is
			// idle, or sent before the wait began. The next read tells.
			c.skip, c.calls, c.block = false, 0, false
			c.cold = true
		}
	}
	switch {
	case hot && c.skip:
		c.misses = 0 // the hot wait ended with data, as it should
	case hot && !c.block:
		// The hot wait expired and the data was already there: it came
		// before the wait began (pipelining), or the scheduler was slower
		// than hotWait to run this goroutine after it came. Only the
		// first repeats.
		c.cold = false
		if c.misses++; c.misses >= maxMisses {
			c.pipelined = true
		}
	case hot:
		// The hot wait expired and the client sent later: it is idle
		// between requests (cold stays set).
	case !start.IsZero() && time.Since(start) < hotWait:
		c.cold = false // it turns around fast again
	}
	if c.rerr != nil {
		if c.rerr == io.EOF {
			return 0, io.EOF
		}
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	return c.rn, nil
}

// armHotWait bounds the socket's read deadline for the wait that begins
// the Read: the wait ends between hotWait and 2×hotWait from now (or at
// the caller's deadline, when that comes first). A deadline armed for an
// earlier wait is kept while it is still at least hotWait away, so a busy
// connection moves its timer once per hotWait rather than once per request
// (each move is a timer update and clock reads in the runtime).
func (c *Conn) armHotWait() { c.armHotWaitAt(time.Now()) }

func (c *Conn) armHotWaitAt(now time.Time) {
	least, most := now.Add(hotWait).UnixNano(), now.Add(2*hotWait)
	c.dmu.Lock()
	switch {
	case c.rWant != 0 && c.rWant <= most.UnixNano():
		// The caller's deadline comes first.
		if c.rSet != c.rWant {
			c.rSet = c.rWant
			_ = c.tc.SetReadDeadline(c.rTime)
		}
	case c.rSet >= least && c.rSet <= most.UnixNano():
		// The earlier wait's deadline is in range: keep it.
	default:
		c.rSet = most.UnixNano()
		_ = c.tc.SetReadDeadline(most)
	}
	c.dmu.Unlock()
}

// readStep is the raw read callback.
func (c *Conn) readStep(fd uintptr) bool {
	c.calls++
	if c.skip && c.calls == 1 {
		return false // wait first
	}
	n, err := sockio.Read(fd, c.rp)
	switch {
	case err == syscall.EAGAIN:
		c.block = true
		if !c.skip {
			c.applyWanted(&c.rWant, &c.rSet, &c.rTime, c.tc.SetReadDeadline)
		}
		return false
	case err != nil:
		c.rerr = err
	case n == 0:
		c.rerr = io.EOF
	default:
		c.rn = n
	}
	return true
}

// Write writes like net.TCPConn.Write.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr, c.wIdle = p, 0, nil, 0
	defer func() { c.wp = nil }()
	for {
		err := c.rc.Write(c.writeFn)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !c.extendWrite() {
			return c.wn, c.opError("write", err)
		}
	}
	c.wrote.Store(true)
	if c.werr != nil {
		return c.wn, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return c.wn, nil
}

// DefaultCopySize is the size of ReadFrom's buffer when Listen is given
// none: a streamed response body is read from its source and written to
// the client in pieces of up to this many bytes.
//
// Each piece costs a read and a write system call, so larger pieces cost
// less CPU per byte; and each write without more to follow pushes its
// tail out as a short segment. At 1 MiB responses over loopback, 128 KiB
// against 64 KiB took 13–20 % off the proxy's CPU per request and 20–30 %
// off the segments a client receives (docs/profiles.md, "Write size of
// streamed bodies"). The price is memory: a response streaming a body
// longer than the server's write buffer holds one buffer while it streams.
const DefaultCopySize = 128 << 10

// copyPools holds one pool of ReadFrom buffers per size in use.
var copyPools sync.Map // int -> *sync.Pool

func copyPool(size int) *sync.Pool {
	if size <= 0 {
		size = DefaultCopySize
	}
	if p, ok := copyPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := copyPools.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	return p.(*sync.Pool)
}

// ReadFrom copies r to the connection through Write, in chunks of up to
// the listener's copy size (a bufio.Writer over a Conn hands it large
// bodies).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	bp := c.copyBufs.Get().(*[]byte)
	defer c.copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			w, werr := c.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// writeStep is the raw write callback.
func (c *Conn) writeStep(fd uintptr) bool {
	n, err := sockio.Write(fd, c.wp[c.wn:])
	c.wn += n
	switch {
	case err == syscall.EAGAIN:
		if c.writeIdle > 0 && (n > 0 || c.wIdle == 0) {
			// Blocked, first or after progress: the idle limit starts now.
			c.wIdleT = time.Now().Add(c.writeIdle)
			c.wIdle = c.wIdleT.UnixNano()
		}
		c.armWrite()
		return false
	case err != nil:
		c.werr = err
	}
	return true
}

// armWrite gives the socket the earlier of the wanted write deadline and
// this Write's idle limit, before the Write blocks.
func (c *Conn) armWrite() {
	c.dmu.Lock()
	n, t := c.wWant, c.wTime
	if c.wIdle != 0 && earlier(c.wIdle, n) {
		n, t = c.wIdle, c.wIdleT
	}
	if c.wSet != n {
		c.wSet = n
		_ = c.tc.SetWriteDeadline(t)
	}
	c.dmu.Unlock()
}

// extendWrite handles an expired write deadline: it reports whether both
// the wanted deadline and the idle limit are still ahead, and if so gives
// the socket the earlier of them.
func (c *Conn) extendWrite() bool {
	now := time.Now().UnixNano()
	if c.wIdle != 0 && c.wIdle <= now {
		return false
	}
	c.dmu.Lock()
	want := c.wWant
	c.dmu.Unlock()
	if want != 0 && want <= now {
		return false
	}
	c.armWrite()
	return true
}

// SetReadDeadline sets the read deadline (see the package comment).
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, &c.rWant, &c.rSet, &c.rTime, c.tc.SetReadDeadline)
}

// SetWriteDeadline sets the write deadline (see the package comment).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, &c.wWant, &c.wSet, &c.wTime, c.tc.SetWriteDeadline)
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// setDeadline records t as wanted and applies it at once when it is
// earlier than what the socket has; a later one waits for a blocking
// operation (applyWanted) or the expiry of the earlier one (extend).
func (c *Conn) setDeadline(t time.Time, want, set *int64, wt *time.Time, apply func(time.Time) error) error {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	*want, *wt = n, t
	if n == *set || !earlier(n, *set) {
		return nil
	}
	if err := apply(t); err != nil {
		return err
	}
	*set = n
	return nil
}

// applyWanted gives the socket the wanted deadline before an operation
// blocks.
func (c *Conn) applyWanted(want, set *int64, wt *time.Time, apply func(time.Time) error) {
	c.dmu.Lock()
	if *set != *want {
		*set = *want
		_ = apply(*wt)
	}
	c.dmu.Unlock()
}

// extend handles an expired socket deadline: it reports whether the
// wanted one is still ahead, and if so applies it.
func (c *Conn) extend(want, set *int64, wt *time.Time, apply func(time.Time) error) bool {
	now := time.Now().UnixNano()
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if *want != 0 && *want <= now {
		return false
	}
	*set = *want
	_ = apply(*wt)
	return true
}

// earlier reports whether deadline a comes before b (0 is never).
func earlier(a, b int64) bool {
	switch {
	case a == 0:
		return false
	case b == 0:
		return true
	}
	return a < b
}

// opError wraps err as net.TCPConn would; err may be the raw
// connection's own *net.OpError, whose cause it keeps.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.tc.LocalAddr(), Addr: c.tc.RemoteAddr(), Err: err}
}

// Close closes the connection; a blocked Read or Write returns.
func (c *Conn) Close() error { return c.tc.Close() }

// CloseWrite shuts down the writing side.
func (c *Conn) CloseWrite() error { return c.tc.CloseWrite() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.tc.LocalAddr() }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }
