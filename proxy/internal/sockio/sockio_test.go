package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	c, s := pair(t)
	c.SetWriteBuffer(4 << 10)
	rc, _ := c.SyscallConn()
	var err error

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

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (c, s *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return cc.(*net.TCPConn), sc.(*net.TCPConn)
}

func TestReader(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	if r == nil {
		t.Fatal("no Reader for a TCP connection")
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d %v", n, err)
	}

	// Data there already, then data that comes while the Read waits.
	s.Write([]byte("hello"))
	buf := make([]byte, 64)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Write([]byte("later"))
	}()
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "later" {
		t.Fatalf("read after a wait: %q %v", buf[:n], err)
	}

	// The read deadline applies, with net's timeout error.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Addr.String() != s.LocalAddr().String() {
		t.Errorf("error %#v; want a read OpError naming the peer", err)
	}
	c.SetReadDeadline(time.Time{})

	// The peer's close: EOF, after the data before it.
	s.Write([]byte("last"))
	s.CloseWrite()
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("read before EOF: %q %v", buf[:n], err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d %v; want io.EOF", n, err)
	}
}

func TestReaderReset(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	s.SetLinger(0)
	s.Close() // a reset
	_, err := r.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after a reset: %v; want ECONNRESET", err)
	}
}

func TestReaderClose(t *testing.T) {
	c, _ := pair(t)
	r := NewReader(c)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it wait (it passes either way)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read interrupted by Close: %v; want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not interrupt the read")
	}
}

func TestReaderNotSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if NewReader(a) != nil {
		t.Error("a Reader for a pipe")
	}
}

func TestReaderAllocs(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	in, buf := []byte("x"), make([]byte, 8)
	allocs := testing.AllocsPerRun(200, func() {
		s.Write(in)
		if n, err := r.Read(buf); n != 1 || err != nil {
			t.Fatalf("read: %d %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per write and read; want 0", allocs)
	}
}

// A Read whose wait meets the deadline asks OnTimeout: when it moves the
// deadline later the Read waits on and gets what comes; when it declines,
// the Read fails with the timeout.
func TestReaderOnTimeout(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	calls := 0
	r.OnTimeout = func() bool {
		calls++
		if calls > 1 {
			return false
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return true
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	go func() {
		time.Sleep(300 * time.Millisecond)
		s.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("Read after a moved deadline: %q %v", buf[:n], err)
	}
	if calls != 1 {
		t.Errorf("OnTimeout called %d times; want 1", calls)
	}

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = r.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with OnTimeout declining: %v; want a timeout", err)
	}
	if calls != 2 {
		t.Errorf("OnTimeout called %d times; want 2", calls)
	}
}

// A write to a connection the peer has reset fails with EPIPE or
// ECONNRESET and raises no SIGPIPE (MSG_NOSIGNAL; write(2) would raise one).
func TestWriteResetNoSIGPIPE(t *testing.T) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGPIPE)
	defer signal.Stop(sig)
	c, s := pair(t)
	s.SetLinger(0)
	s.Close() // a reset
	rc, _ := c.SyscallConn()
	var err error
	for range 100 {
		rc.Write(func(fd uintptr) bool { _, err = Write(fd, []byte("after the reset")); return true })
		if err == syscall.EPIPE {
			break
		}
	}
	if err != syscall.EPIPE {
		t.Fatalf("writes after a reset: %v; want EPIPE", err)
	}
	select {
	case s := <-sig:
		t.Fatalf("the write raised %v", s)
	case <-time.After(50 * time.Millisecond):
	}
}

// BenchmarkSocketCalls compares a send and a receive of 200 bytes over
// loopback made as write(2)/read(2) with the same made as
// sendto(2)/recvfrom(2), which Write and Read use. Run it on one CPU:
// GOMAXPROCS=1 taskset -c 0 go test -run X -bench SocketCalls ./internal/sockio
func BenchmarkSocketCalls(b *testing.B) {
	for _, bc := range []struct {
		name       string
		send, recv uintptr
		sendFlags  uintptr
	}{
		{"write-read", syscall.SYS_WRITE, syscall.SYS_READ, 0},
		{"sendto-recvfrom", syscall.SYS_SENDTO, syscall.SYS_RECVFROM, msgNoSignal},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, s := pair(b)
			cc, _ := c.SyscallConn()
			sc, _ := s.SyscallConn()
			out, in := make([]byte, 200), make([]byte, 4096)
			for b.Loop() {
				cc.Write(func(fd uintptr) bool {
					if _, err := rawRW(bc.send, fd, out, bc.sendFlags); err != nil {
						b.Fatal(err)
					}
					return true
				})
				sc.Read(func(fd uintptr) bool {
					n, err := rawRW(bc.recv, fd, in, 0)
					if err == syscall.EAGAIN {
						return false
					}
					if err != nil || n != len(out) {
						b.Fatalf("read %d %v", n, err)
					}
					return true
				})
			}
		})
	}
}
