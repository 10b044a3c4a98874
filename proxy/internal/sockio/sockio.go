// Package sockio holds the system-call loops shared by the proxy's raw
// socket callbacks (syscall.RawConn), and a Reader built on them.
//
// The calls are made with syscall.RawSyscall, not syscall.Syscall (which
// syscall.Read and syscall.Write use): the sockets are non-blocking, so a
// call never parks its thread, and the scheduler's bookkeeping around a
// blocking call (entersyscall, exitsyscall: a few percent of the proxy's
// CPU at one core) buys nothing. A call is short — at most a copy of the
// buffer given — so holding the processor through it delays no one.
//
// They are send(2) and recv(2) (sendto and recvfrom without an address),
// not write(2) and read(2): on a socket the two do the same, but the
// file-level path of read and write (the VFS checks and notification
// hooks) costs about 0.1–0.2 µs a call that the socket calls skip
// (BenchmarkSocketCalls), and MSG_NOSIGNAL spares the process a SIGPIPE
// when a peer has reset the connection (the write gets EPIPE either way).
package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Write writes p to the non-blocking socket fd until all of it is
// written, the socket's send buffer is full (syscall.EAGAIN), or another
// error. It returns how many bytes were written.
func Write(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := rawRW(syscall.SYS_SENDTO, fd, p[n:], msgNoSignal)
		if m > 0 {
			n += m
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return n, err
		case m <= 0:
			return n, syscall.EIO // a socket write does not return 0
		}
	}
	return n, nil
}

// Read reads once from the non-blocking socket fd into p, retrying on
// EINTR. It returns syscall.EAGAIN when there is nothing to read, and 0
// bytes with a nil error at the end of the stream.
func Read(fd uintptr, p []byte) (int, error) {
	for {
		n, err := rawRW(syscall.SYS_RECVFROM, fd, p, 0)
		if err == syscall.EINTR {
			continue
		}
		return n, err
	}
}

// msgNoSignal is MSG_NOSIGNAL: a send on a reset connection returns EPIPE
// without raising SIGPIPE.
const msgNoSignal = 0x4000

// rawRW makes sendto(fd, p, flags, NULL, 0) or recvfrom(fd, p, flags,
// NULL, NULL).
func rawRW(trap, fd uintptr, p []byte, flags uintptr) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall6(trap, fd, uintptr(ptr), uintptr(len(p)), flags, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Reader reads a socket the way net.TCPConn.Read does — waiting in the
// runtime's poller, under the connection's read deadline, with the same
// errors — but makes the read(2) itself with Read.
type Reader struct {
	// OnTimeout, when set, is called when a Read's wait ends at the read
	// deadline. If it returns true (it moved the deadline later) the Read
	// waits again instead of failing.
	OnTimeout func() bool

	c      net.Conn
	rc     syscall.RawConn
	readFn func(fd uintptr) bool // r.step, bound once
	p      []byte
	n      int
	err    error

	// ReadPipe's state.
	spliceFn func(fd uintptr) bool // r.spliceStep, bound on first use
	pipe     *Pipe
	most     int
}

// NewReader returns a Reader of c, or nil when c is not a socket.
func NewReader(c net.Conn) *Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &Reader{c: c, rc: rc}
	r.readFn = r.step
	return r
}

// Read reads into p. One Read at a time.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.readFn)
	for err != nil && r.OnTimeout != nil && errors.Is(err, os.ErrDeadlineExceeded) && r.OnTimeout() {
		err = r.rc.Read(r.readFn)
	}
	r.p = nil
	return r.result(err)
}

// result ends a Read or ReadPipe whose wait ended with err.
func (r *Reader) result(err error) (int, error) {
	n := r.n
	if err == nil {
		err = r.err
	}
	r.err = nil
	if err != nil && err != io.EOF {
		la := r.c.LocalAddr()
		err = &net.OpError{Op: "read", Net: la.Network(), Source: la, Addr: r.c.RemoteAddr(), Err: err}
	}
	return n, err
}

func (r *Reader) step(fd uintptr) bool {
	n, err := Read(fd, r.p)
	return r.stepped(n, err, "read")
}

// stepped records the outcome of a raw read or splice (the system call
// named call) and reports whether the wait is over.
func (r *Reader) stepped(n int, err error, call string) bool {
	switch {
	case err == syscall.EAGAIN:
		return false // wait for readability
	case err != nil:
		r.err = os.NewSyscallError(call, err)
	case n == 0:
		r.err = io.EOF
	default:
		r.n = n
	}
	return true
}
