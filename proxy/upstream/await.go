package upstream

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/sockio"
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
// came before the write is not seen, and cannot matter: the instance sends
// nothing before the request but a close, and writing to a closed
// connection causes a reset, which is seen.
//
// The caller sets the read deadline (the response-header timeout) first,
// with wantRead. On return the bytes written have been added to c.out.n.
// Errors are the transport's; a read error (deadline, close) is left to
// the response read that follows, which meets it at once (a deadline kept
// from an earlier request is moved there: see readDeadline).
func (c *conn) sendAwait(buf []byte, idle time.Duration) error {
	c.await = awaitState{buf: buf}
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
	if st.started {
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
