// Package testutil holds the small helpers the project's tests share:
// free loopback addresses, a buffer safe for concurrent writers, a
// loopback server for raw TCP handlers, and waiting for a condition
// (Eventually).
package testutil

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/internal/testing/freeport"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago, picked by freeport.Listen so that little else can take it meanwhile.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := freeport.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Buffer collects what is written to it (a process's stderr, a logger's
// output) and may be written and read from different goroutines.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ServeTCP accepts connections on a loopback port until the test ends and
// runs handle for each on its own goroutine; handle owns the connection.
// It returns the address.
func ServeTCP(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// RefusingAddr returns a loopback address that refuses connections for
// the rest of the test: a TCP socket bound to it and never listening
// holds the port, so no other process can take it meanwhile (a listener
// closed for the purpose frees its port, and a concurrent test may bind
// it and answer).
func RefusingAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
