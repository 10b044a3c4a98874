package proxy

import "syscall"

// forceBuffers sets the socket's buffers to n past the sysctl limits,
// which root may (SO_RCVBUFFORCE, SO_SNDBUFFORCE); otherwise nothing.
func forceBuffers(rc syscall.RawConn, n int) {
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, n)
	})
}
