// Package sockio holds the system-call loops shared by the proxy's raw
// socket callbacks (syscall.RawConn).
package sockio

import "syscall"

// Write writes p to the non-blocking socket fd until all of it is
// written, the socket's send buffer is full (syscall.EAGAIN), or another
// error. It returns how many bytes were written.
func Write(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(int(fd), p[n:])
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
