// Package clientconn wraps the proxy's client connections to save kinds
// of work per keep-alive request that net.TCPConn always does:
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
//   - Copies of long response bodies. ReadFrom splices a body that can
//     move itself into a pipe (sockio.PipeReader: the instance's socket)
//     from the pipe to the client's socket, so its bytes never pass
//     through the proxy's memory; other bodies it copies in large pieces.
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

	"github.com/switchyard/switchyard/proxy/internal/sockio"
	"github.com/switchyard/switchyard/proxy/listen"
)

// hotWait bounds the first wait of a Read that skipped the read(2): it
// lasts between hotWait and 2×hotWait (see armHotWait). That is the extra
// latency a pipelining client sees up to maxMisses times per connection,
// and the idle time after which a connection is read the ordinary way.
const hotWait = 10 * time.Millisecond

// maxMisses is how many hot waits in a row may expire with data already
// there before a connection is taken for a pipelining one.
const maxMisses = 3

// ListenConfig is how Listen's Conns write and count.
type ListenConfig struct {
	// Name is the listener's name, in each connection's record
	// (listen.Info).
	Name string
	// WriteIdle: a Write fails with a timeout once it has been unable to
	// write anything for this long (see New). 0: no limit.
	WriteIdle time.Duration
	// CopySize is the largest piece in which ReadFrom copies a body;
	// DefaultCopySize when 0 or less.
	CopySize int
	// PipeSize is the size of the pipes through which ReadFrom splices the
	// bodies that can be spliced: DefaultPipeSize when 0; none when less.
	PipeSize int
	// Counts, when not nil, counts how ReadFrom moved bodies.
	Counts *Counts
}

// Counts counts the bodies given to the Conns' ReadFrom, by how they were
// moved.
type Counts struct {
	Spliced atomic.Uint64 // through a pipe
	Copied  atomic.Uint64 // through memory (not spliceable, splicing off, no pipe)
	// NoPipe counts the bodies copied because no pipe could be had: out
	// of descriptors, or the kernel refused the pipe size (see
	// sockio.ErrPipeSize).
	NoPipe atomic.Uint64
}

// Listen wraps ln so that its TCP connections are Conns configured by cfg.
func Listen(ln net.Listener, cfg ListenConfig) net.Listener {
	return listener{ln, cfg.Name, cfg.WriteIdle, copiersOf(cfg.CopySize, cfg.PipeSize), cfg.Counts}
}

type listener struct {
	net.Listener
	name      string
	writeIdle time.Duration
	cp        *copier
	counts    *Counts
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if cc := newConn(tc, l.writeIdle, l.cp, l.counts); cc != nil {
			cc.info = listen.NewInfo(l.name, tc.RemoteAddr())
			return cc, nil
		}
	}
	return c, nil
}

// Conn is a client connection. It is a net.Conn, and an io.ReaderFrom
// that copies through Write in large chunks.
type Conn struct {
	info    listen.Info // what the listener stack knows of the connection
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
	cp        *copier               // ReadFrom's buffers and pipes
	counts    *Counts               // nil: none kept
	spliceFn  func(fd uintptr) bool // c.spliceStep, bound once

	wmu   sync.Mutex // one Write at a time; guards the write state below
	wp    []byte
	wpipe *sockio.Pipe // writePipe's, instead of wp
	wn    int
	werr  error
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
// ReadFrom copies in pieces of DefaultCopySize and splices through pipes
// of DefaultPipeSize.
func New(tc *net.TCPConn, writeIdle time.Duration) *Conn {
	return newConn(tc, writeIdle, copiersOf(0, 0), nil)
}

func newConn(tc *net.TCPConn, writeIdle time.Duration, cp *copier, counts *Counts) *Conn {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{tc: tc, rc: rc, writeIdle: writeIdle, cp: cp, counts: counts}
	c.readFn, c.writeFn, c.spliceFn = c.readStep, c.writeStep, c.spliceStep
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
	c.wp = p
	defer func() { c.wp = nil }()
	return c.write(c.writeFn)
}

// writePipe empties the pipe p into the connection, as Write would write
// its bytes.
func (c *Conn) writePipe(p *sockio.Pipe) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wpipe = p
	defer func() { c.wpipe = nil }()
	return c.write(c.spliceFn)
}

// write runs the raw write callback step until it is done, under the
// write deadline and idle limit. c.wmu is held.
func (c *Conn) write(step func(fd uintptr) bool) (int, error) {
	c.wn, c.werr, c.wIdle = 0, nil, 0
	for {
		err := c.rc.Write(step)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !c.extendWrite() {
			return c.wn, c.opError("write", err)
		}
	}
	c.wrote.Store(true)
	if c.werr != nil {
		return c.wn, c.opError("write", os.NewSyscallError(c.wcall(), c.werr))
	}
	return c.wn, nil
}

// wcall names the system call of the write in progress, for its errors.
func (c *Conn) wcall() string {
	if c.wpipe != nil {
		return "splice"
	}
	return "write"
}

// DefaultCopySize is the size of ReadFrom's buffer when Listen is given
// none: a streamed response body is read from its source and written to
// the client in pieces of up to this many bytes.
//
// Each piece costs a read and a write system call, so larger pieces cost
// less CPU per byte; and each write without more to follow pushes its
// tail out as a short segment. At 1 MiB responses over loopback, 128 KiB
// against 64 KiB took 13–20 % off the proxy's CPU per request and 20–30 %
// off the segments a client receives (docs/notes/profiles.md, "Write size of
// streamed bodies"). The price is memory: a response streaming a body
// longer than the server's write buffer holds one buffer while it streams.
// A spliced body holds a pipe of this size instead, which holds no memory
// of its own: only references to the pages the kernel received.
const DefaultCopySize = 128 << 10

// DefaultPipeSize is the size of the pipes through which ReadFrom
// splices when Listen is given none: the most a response moves from the
// instance's socket to the client's in one turn. Larger pipes cost
// fewer system calls per byte, and give the client fewer, fuller
// segments: at 1 MiB responses over loopback, splicing through 1 MiB
// pipes against 128 KiB took about 4 % off the CPU time the client and
// the instance spent per response, and through 64 KiB pipes added about
// 20 % (docs/notes/profiles.md, "Splicing response bodies"). A pipe holds no
// memory of its own, only references to pages the kernel received, up
// to its size while the client is slower than the instance. 1 MiB is
// also the largest pipe an unprivileged process may ask for by default
// (fs.pipe-max-size).
const DefaultPipeSize = 1 << 20

// copier holds ReadFrom's buffers and pipes, of one copy size and pipe
// size.
type copier struct {
	bufs  sync.Pool
	pipes *sockio.PipePool // nil: no splicing
}

type copierKey struct{ copySize, pipeSize int }

// copiers holds one copier per pair of sizes in use.
var copiers sync.Map // copierKey -> *copier

func copiersOf(copySize, pipeSize int) *copier {
	if copySize <= 0 {
		copySize = DefaultCopySize
	}
	if pipeSize == 0 {
		pipeSize = DefaultPipeSize
	}
	k := copierKey{copySize, max(pipeSize, -1)}
	if cp, ok := copiers.Load(k); ok {
		return cp.(*copier)
	}
	cp := &copier{}
	cp.bufs.New = func() any { b := make([]byte, copySize); return &b }
	if pipeSize > 0 {
		cp.pipes = sockio.NewPipePool(pipeSize)
	}
	v, _ := copiers.LoadOrStore(k, cp)
	return v.(*copier)
}

// ReadFrom copies r to the connection through Write, in chunks of up to
// the listener's copy size (a bufio.Writer over a Conn hands it large
// bodies). A reader that can move its bytes into a pipe
// (sockio.PipeReader), alone or in an io.LimitedReader, is spliced
// instead, through a pipe of the listener's pipe size, without passing
// through user memory; one that says it cannot (sockio.ErrNoSplice) is
// copied.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	src, limit := r, int64(-1)
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		src, limit = lr.R, lr.N
	}
	if pr, ok := src.(sockio.PipeReader); ok && c.cp.pipes != nil {
		n, err := c.spliceFrom(pr, limit)
		if lr != nil {
			lr.N -= n
		}
		if err != sockio.ErrNoSplice {
			if c.counts != nil {
				c.counts.Spliced.Add(1)
			}
			return n, err
		}
	}
	if c.counts != nil {
		c.counts.Copied.Add(1)
	}
	bp := c.cp.bufs.Get().(*[]byte)
	defer c.cp.bufs.Put(bp)
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

// spliceFrom moves pr to the connection a pipeful at a time, up to limit
// bytes when that is not negative. It returns sockio.ErrNoSplice, having
// moved nothing, when pr cannot splice or no pipe can be had.
func (c *Conn) spliceFrom(pr sockio.PipeReader, limit int64) (int64, error) {
	if limit == 0 {
		return 0, nil
	}
	p, err := c.cp.pipes.Get()
	if err != nil {
		// Out of descriptors, say, or the kernel would not grant the
		// pipe's size (see sockio.PipePool.Get): copy.
		if c.counts != nil {
			c.counts.NoPipe.Add(1)
		}
		return 0, sockio.ErrNoSplice
	}
	defer c.cp.pipes.Put(p)
	var n int64
	for {
		m := p.Size()
		if limit >= 0 && limit-n < int64(m) {
			m = int(limit - n)
		}
		_, rerr := pr.ReadPipe(p, m)
		if p.Len() > 0 {
			w, werr := c.writePipe(p)
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF || n == limit {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// writeStep is the raw write callback of Write.
func (c *Conn) writeStep(fd uintptr) bool {
	n, err := sockio.Write(fd, c.wp[c.wn:])
	return c.wrote1(n, err)
}

// spliceStep is the raw write callback of writePipe.
func (c *Conn) spliceStep(fd uintptr) bool {
	n, err := c.wpipe.SpliceTo(fd)
	return c.wrote1(n, err)
}

// wrote1 records one write callback's n bytes and error, and reports
// whether the write is over.
func (c *Conn) wrote1(n int, err error) bool {
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

// Info is the connection's record (listen.Conn): a Conn is the TCP layer
// of the proxy's listener stack.
func (c *Conn) Info() *listen.Info { return &c.info }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }
