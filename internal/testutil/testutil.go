// Package testutil holds the small helpers the project's tests share:
// free loopback addresses, a buffer safe for concurrent writers, and a
// loopback server for raw TCP handlers.
package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/freeport"
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

// WaitFor polls cond until it holds, and fails the test when it does not
// within d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
