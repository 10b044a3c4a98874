package sockio

import (
	"io"
	"net"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.(*net.TCPConn).SetWriteBuffer(4 << 10)
	rc, _ := c.(*net.TCPConn).SyscallConn()

	// Small: all of it.
	var n int
	rc.Write(func(fd uintptr) bool { n, err = Write(fd, []byte("hello")); return true })
	if n != 5 || err != nil {
		t.Fatalf("small write: %d %v", n, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("peer read %q %v", buf, err)
	}
	// Larger than the buffers, the peer not reading: a part, then EAGAIN.
	big := make([]byte, 16<<20)
	rc.Write(func(fd uintptr) bool { n, err = Write(fd, big); return true })
	if err != syscall.EAGAIN || n <= 0 || n >= len(big) {
		t.Fatalf("big write: %d %v; want part of it and EAGAIN", n, err)
	}
	// A closed peer: an error.
	s.Close()
	var last error
	for range 100 {
		rc.Write(func(fd uintptr) bool { _, last = Write(fd, big); return true })
		if last != nil && last != syscall.EAGAIN {
			break
		}
	}
	if last != syscall.ECONNRESET && last != syscall.EPIPE {
		t.Errorf("write to a closed peer: %v; want ECONNRESET or EPIPE", last)
	}
}
