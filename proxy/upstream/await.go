package upstream

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/proxy/internal/sockio"
)

// maxAwaitRequest bounds the requests sent with sendAwait: the header and
// an in-memory body are copied into one buffer and written with one
// system call. Larger requests go through the buffered writer.
const maxAwaitRequest = 64 << 10

// awaitState is the state of one sendAwait, kept in the conn so that the
// callback given to the socket is bound once per connection and a request
// allocates nothing.
type awaitState struct {
	buf     []byte
	written int
	err     error // a write error other than EAGAIN
	started bool  // the callback ran: the write was attempted
	peek    bool  // a reused connection: check it is quiet before the write
	early   bool  // it was not: nothing was written
}

// sendAwait writes buf to the instance and waits until the socket is
// readable (the response is arriving), or the read deadline passes, or the
// connection is closed.
//
// It does so with one system call where the ordinary path takes two: a
// write followed by a read is bound to find nothing yet (the instance has
// not seen the request), fail with EAGAIN, and only then wait. Here the
// write runs inside the socket's raw read, after the poller's readiness
// was reset, and the callback then asks to wait: readiness seen from then
// on, which includes anything the request causes, wakes it. Readiness that
// came before the write is not seen by the wait. So on a reused connection
// (peek) the callback first checks that nothing is waiting to be read (see
// readable), in the same call: when something is (bytes the instance sent
// unasked, or its close), the write is not made and the error is errEarly.
// A close that comes after the check draws a reset on the write, which is
// seen.
//
// The caller sets the read deadline (the response-header timeout) first,
// with wantRead. On return the bytes written have been added to c.out.n.
// Errors are the transport's; a read error (deadline, close) is left to
// the response read that follows, which meets it at once (a deadline kept
// from an earlier request is moved there: see readDeadline).
func (c *conn) sendAwait(buf []byte, peek bool, idle time.Duration) error {
	c.await = awaitState{buf: buf, peek: peek}
	rerr := c.rc.Read(c.awaitFn)
	for rerr != nil && !c.await.started && errors.Is(rerr, os.ErrDeadlineExceeded) && c.readExpired() {
		// A read deadline kept from an earlier request (see wantRead)
		// passed before the write: the request's own is later.
		rerr = c.rc.Read(c.awaitFn)
	}
	st := c.await
	c.await = awaitState{}
	c.out.n += int64(st.written)
	switch {
	case st.early:
		return errEarly
	case !st.started:
		// The connection was closed or its deadline had passed before
		// anything was written.
		return writeErr(rerr, false, true)
	case st.err != nil:
		err := &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError("write", st.err)}
		return writeErr(err, st.written > 0, true)
	case st.written < len(buf):
		// The socket's send buffer filled up: the rest goes the ordinary
		// way, under the write deadline.
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		n, err := c.Conn.Write(buf[st.written:])
		c.out.n += int64(n)
		if err != nil {
			return writeErr(err, true, false)
		}
	}
	return nil
}

// awaitStep is the raw read callback of sendAwait. Its first call writes
// and asks to wait for readability; the next call (the socket became
// readable) ends the wait without reading: the response reader reads.
func (c *conn) awaitStep(fd uintptr) bool {
	st := &c.await
	if st.started || st.early {
		return true
	}
	if st.peek && readable(fd) {
		st.early = true
		return true
	}
	st.started = true
	n, err := sockio.Write(fd, st.buf[st.written:])
	st.written += n
	switch {
	case err == syscall.EAGAIN:
		return true // the caller sends the rest
	case err != nil:
		st.err = err
		return true
	}
	return false
}

// readable reports whether the socket fd has something to read — a byte,
// the end of the stream, an error — without taking it or waiting: one
// recvfrom(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT). An idle keep-alive
// connection has nothing (HAProxy makes the same check before reusing
// one): bytes there are not the answer to a request not yet sent, and the
// end means the instance closed it.
func readable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}

// quiet reports whether the reused connection c has nothing to read (see
// readable), for a request not sent with sendAwait. A connection that is
// not a socket is taken to be quiet.
func (c *conn) quiet() bool {
	if c.rc == nil {
		return true
	}
	c.await.early = false
	if err := c.rc.Control(c.peekFn); err != nil {
		return false // closed
	}
	return !c.await.early
}

// peekStep is the raw control callback of quiet.
func (c *conn) peekStep(fd uintptr) { c.await.early = readable(fd) }
