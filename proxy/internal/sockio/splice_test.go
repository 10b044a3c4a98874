package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pattern returns n bytes that differ from one offset to the next, so that
// a byte lost, repeated or reordered shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// Bytes go from one connection through a pipe to another unchanged: a
// prefix written into the pipe from memory, then the rest spliced from the
// socket a pipeful at a time, and each pipeful spliced on.
func TestSpliceRelay(t *testing.T) {
	const prefix = 1000
	body := pattern(3<<20 + 7)
	inC, inS := pair(t)   // the instance writes to inS; the relay reads inC
	outC, outS := pair(t) // the relay writes to outC; the client reads outS
	go func() {
		inS.Write(body[prefix:])
		inS.Close()
	}()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(outS)
		got <- b
	}()

	pp := NewPipePool(64 << 10)
	p, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() < 64<<10 || p.Len() != 0 {
		t.Fatalf("new pipe: size %d, %d bytes in it; want at least 64 KiB, empty", p.Size(), p.Len())
	}
	r := NewReader(inC)
	orc, _ := outC.SyscallConn()
	send := func() {
		t.Helper()
		var err error
		for p.Len() > 0 && err == nil {
			orc.Write(func(fd uintptr) bool {
				_, err = p.SpliceTo(fd)
				return err != syscall.EAGAIN
			})
		}
		if err != nil {
			t.Fatalf("SpliceTo: %v", err)
		}
	}
	if n, err := p.Fill(body[:prefix]); n != prefix || err != nil {
		t.Fatalf("Fill: %d, %v", n, err)
	}
	send()
	turns, largest := 0, 0
	for {
		n, err := r.ReadPipe(p, p.Size())
		if n != p.Len() {
			t.Fatalf("ReadPipe moved %d bytes; the pipe holds %d", n, p.Len())
		}
		if n > 0 {
			turns++
			largest = max(largest, n)
			send()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadPipe: %v", err)
		}
	}
	outC.Close()
	if b := <-got; !bytes.Equal(b, body) {
		t.Fatalf("relayed %d bytes, equal %v; want the %d sent", len(b), bytes.Equal(b, body), len(body))
	}
	if largest > p.Size() {
		t.Errorf("one ReadPipe moved %d bytes into a pipe of %d", largest, p.Size())
	}
	t.Logf("%d turns, largest %d bytes", turns, largest)
	pp.Put(p)
	if q, _ := pp.Get(); q != p {
		t.Error("an empty pipe put back was not reused")
	}
}

// ReadPipe waits under the read deadline and fails at it as Read does,
// and moves no more than it is asked for.
func TestReadPipeDeadlineAndMax(t *testing.T) {
	c, s := pair(t)
	pp := NewPipePool(64 << 10)
	p, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := NewReader(c)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := r.ReadPipe(p, 100)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadPipe with nothing sent: %d, %v; want a timeout", n, err)
	}
	c.SetReadDeadline(time.Time{})
	s.Write(pattern(1000)) // one segment on loopback
	if n, err := r.ReadPipe(p, 100); n != 100 || err != nil || p.Len() != 100 {
		t.Fatalf("ReadPipe of at most 100 bytes: %d, %v, pipe holds %d", n, err, p.Len())
	}
}

// A pipe put back with bytes in it belongs to a stream that failed: it is
// closed, not reused.
func TestPipePoolClosesPipesWithBytes(t *testing.T) {
	pp := NewPipePool(64 << 10)
	p, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fill([]byte("left over")); err != nil {
		t.Fatal(err)
	}
	pp.Put(p)
	if p.r != -1 || len(pp.free) != 0 {
		t.Fatal("a pipe with bytes in it was kept")
	}
	q, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Len() != 0 {
		t.Errorf("the next pipe holds %d bytes", q.Len())
	}
}

// Fill puts in no more than the pipe has room for.
func TestFillStopsAtTheSize(t *testing.T) {
	pp := NewPipePool(64 << 10)
	p, err := pp.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n, err := p.Fill(make([]byte, p.Size()+5000))
	if n != p.Size() || err != nil || p.Len() != p.Size() {
		t.Fatalf("Fill past the size: %d, %v, pipe holds %d; want %d", n, err, p.Len(), p.Size())
	}
}

// TryPipeSize tells a size the kernel grants from one it refuses (above
// 2 GiB, F_SETPIPE_SZ refuses any process).
func TestTryPipeSize(t *testing.T) {
	if err := TryPipeSize(64 << 10); err != nil {
		t.Errorf("64 KiB: %v", err)
	}
	if err := TryPipeSize(1 << 32); err != ErrPipeSize {
		t.Errorf("4 GiB: %v; want ErrPipeSize", err)
	}
}

// BenchmarkRelay moves 1 MiB per op from one loopback connection to
// another the two ways the proxy moves a long response body: copied
// through a 128 KiB buffer (a read and a write per piece) and spliced
// through a 1 MiB pipe. A goroutine keeps the source writing and another
// keeps the destination read, on other threads; relay-µs/op is the CPU
// time of the relay's own thread (user and system, including the
// loopback delivery of what it sends), which is what the proxy spends
// (docs/notes/profiles.md, "Splicing response bodies"):
//
//	go test -run - -bench Relay -benchtime 2000x ./internal/sockio
func BenchmarkRelay(b *testing.B) {
	const op = 1 << 20
	for _, bc := range []struct {
		name   string
		splice bool
	}{{"copy-128KiB", false}, {"splice-1MiB", true}} {
		b.Run(bc.name, func(b *testing.B) {
			inC, inS := pair(b)
			outC, outS := pair(b)
			chunk := pattern(op)
			go func() {
				for {
					if _, err := inS.Write(chunk); err != nil {
						return
					}
				}
			}()
			go io.Copy(io.Discard, outS)
			r := NewReader(inC)
			orc, _ := outC.SyscallConn()
			buf := make([]byte, 128<<10)
			p, err := NewPipePool(op).Get()
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			write := func(step func(fd uintptr) (int, error), n int) {
				var err error
				for done := 0; done < n && err == nil; {
					orc.Write(func(fd uintptr) bool {
						var m int
						m, err = step(fd)
						done += m
						return err != syscall.EAGAIN
					})
					if err == syscall.EAGAIN {
						err = nil
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(op)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			for b.Loop() {
				for left := op; left > 0; {
					var n int
					var err error
					if bc.splice {
						n, err = r.ReadPipe(p, left)
						write(p.SpliceTo, n)
					} else {
						n, err = r.Read(buf[:min(len(buf), left)])
						out := buf[:n]
						write(func(fd uintptr) (int, error) {
							m, err := Write(fd, out)
							out = out[m:]
							return m, err
						}, n)
					}
					if err != nil {
						b.Fatal(err)
					}
					left -= n
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N)/1e3, "relay-µs/op")
			b.StopTimer()
			inS.Close()
			outC.Close()
		})
	}
}

// threadCPU is the calling thread's user and system time in nanoseconds.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
