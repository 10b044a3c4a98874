package clientconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/internal/sockio"
)

// pair returns a wrapped server side and the raw client side of a
// loopback connection.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	return pairIdle(t, 0)
}

// pairIdle is pair with a write idle limit.
func pairIdle(t *testing.T, writeIdle time.Duration) (*Conn, net.Conn) {
	t.Helper()
	return pairWith(t, writeIdle, 0)
}

// pairWith is pair with a write idle limit and a ReadFrom copy size.
func pairWith(t *testing.T, writeIdle time.Duration, copySize int) (*Conn, net.Conn) {
	t.Helper()
	return pairPipes(t, writeIdle, copySize, 0, nil)
}

// pairPipes is pairWith with a pipe size and counts (ListenConfig).
func pairPipes(t *testing.T, writeIdle time.Duration, copySize, pipeSize int, counts *Counts) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := Listen(ln, ListenConfig{WriteIdle: writeIdle, CopySize: copySize, PipeSize: pipeSize, Counts: counts})
	done := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-done
	cc, ok := sc.(*Conn)
	if !ok {
		t.Fatalf("Accept returned %T; want *Conn", sc)
	}
	t.Cleanup(func() { cc.Close(); client.Close() })
	return cc, client
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// Keep-alive exchanges: each Read after a Write waits first, and gets the
// next request whole. The server reads on its own goroutine, as the proxy
// does, and the client sends each request once the server is waiting for
// it (a client that sent before the wait began would be pipelining).
func TestKeepAliveExchanges(t *testing.T) {
	s, c := pair(t)
	reading := make(chan struct{}, 1)
	served := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			reading <- struct{}{}
			n, err := s.Read(buf)
			if err == io.EOF {
				served <- nil
				return
			}
			if err != nil || string(buf[:n]) != "req" {
				served <- fmt.Errorf("read %q %v", buf[:n], err)
				return
			}
			if _, err := s.Write([]byte("resp")); err != nil {
				served <- err
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		<-reading
		// The server is in its wait by now: well after it began (unless
		// the scheduler held it back that long, maxMisses times in a row)
		// and well before the wait's earliest end (hotWait).
		time.Sleep(hotWait / 2)
		if _, err := c.Write([]byte("req")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, 4); got != "resp" {
			t.Fatalf("exchange %d: client got %q", i, got)
		}
	}
	<-reading
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("server: %v (want EOF after the client closed)", err)
	}
	if s.pipelined {
		t.Error("a client that waits for its answers was taken for a pipelining one")
	}
}

// A client that sends its next request before it gets the answer to the
// last one (pipelining) gets it read after at most hotWait, and after
// maxMisses times the connection is read the ordinary way.
func TestPipeliningClient(t *testing.T) {
	s, c := pair(t)
	buf := make([]byte, 64)
	c.Write([]byte("req0"))
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "req0" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	for i := 1; i <= maxMisses+2; i++ {
		c.Write([]byte("req"))
		// Let the poller see the data before the response is written.
		time.Sleep(5 * time.Millisecond)
		s.Write([]byte("resp"))
		start := time.Now()
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := s.Read(buf)
		el := time.Since(start)
		if err != nil || string(buf[:n]) != "req" {
			t.Fatalf("round %d: read %q %v", i, buf[:n], err)
		}
		if el > hotWait+time.Second {
			t.Fatalf("round %d: read took %v; want at most about %v", i, el, hotWait)
		}
		readN(t, c, 4)
	}
	if !s.pipelined {
		t.Errorf("after %d pipelined requests the connection is not taken for pipelining", maxMisses+2)
	}
}

// A client idle longer than hotWait is read the ordinary way until it
// turns around fast again.
func TestIdleClientGoesColdAndBack(t *testing.T) {
	s, c := pair(t)
	buf := make([]byte, 64)
	s.Write([]byte("hello"))
	go func() {
		time.Sleep(4 * hotWait)
		c.Write([]byte("late"))
	}()
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if !s.cold || s.pipelined {
		t.Fatalf("idle client: cold %v pipelined %v; want cold", s.cold, s.pipelined)
	}
	// A fast turnaround makes it hot again (tried a few times: a loaded
	// machine may stall one for longer than hotWait).
	for i := 0; i < 5 && s.cold; i++ {
		s.Write([]byte("x"))
		c.Write([]byte("quick"))
		if n, err := s.Read(buf); err != nil || string(buf[:n]) != "quick" {
			t.Fatalf("read %q %v", buf[:n], err)
		}
		readN(t, c, 1)
	}
	if s.cold {
		t.Error("fast turnarounds: still cold")
	}
}

// A hot wait's deadline is armed 2×hotWait ahead and kept for later waits
// while at least hotWait of it is left; the caller's deadline comes first.
func TestHotWaitDeadline(t *testing.T) {
	s, _ := pair(t)
	t0 := time.Now()
	set := func() time.Duration {
		s.dmu.Lock()
		defer s.dmu.Unlock()
		return time.Duration(s.rSet - t0.UnixNano())
	}
	s.armHotWaitAt(t0)
	if got := set(); got != 2*hotWait {
		t.Fatalf("first wait: deadline t0+%v; want t0+%v", got, 2*hotWait)
	}
	s.armHotWaitAt(t0.Add(hotWait))
	if got := set(); got != 2*hotWait {
		t.Errorf("hotWait later: deadline t0+%v; want it kept at t0+%v", got, 2*hotWait)
	}
	later := t0.Add(hotWait + time.Millisecond)
	s.armHotWaitAt(later)
	if got, want := set(), hotWait+time.Millisecond+2*hotWait; got != want {
		t.Errorf("less than hotWait left: deadline t0+%v; want re-armed to t0+%v", got, want)
	}
	// A caller's deadline within the range, later than the kept one (so
	// only recorded when set), is what the wait gets.
	t1 := later.Add(hotWait / 2)
	want := t1.Add(hotWait * 9 / 5)
	s.SetReadDeadline(want)
	s.armHotWaitAt(t1)
	if got := set(); got != want.Sub(t0) {
		t.Errorf("caller's deadline t0+%v: socket has t0+%v", want.Sub(t0), got)
	}
}

// A read deadline moved later is honoured at its new time, one moved
// earlier at once; both after a Write (hot wait) and not.
func TestReadDeadlines(t *testing.T) {
	for _, afterWrite := range []bool{false, true} {
		s, _ := pair(t)
		buf := make([]byte, 8)
		check := func(name string, want time.Duration) {
			t.Helper()
			if afterWrite {
				s.Write([]byte("x"))
			}
			start := time.Now()
			_, err := s.Read(buf)
			el := time.Since(start)
			if !isTimeout(err) {
				t.Fatalf("%s (after write %v): %v; want a timeout", name, afterWrite, err)
			}
			if el < want-5*time.Millisecond || el > want+2*time.Second {
				t.Errorf("%s (after write %v): timed out after %v; want %v", name, afterWrite, el, want)
			}
		}
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		s.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		check("moved later", 150*time.Millisecond)
		s.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		s.SetReadDeadline(time.Now().Add(40 * time.Millisecond))
		check("moved earlier", 40*time.Millisecond)
	}
}

// A deadline set in the past from another goroutine interrupts a blocked
// Read at once, also one waiting first after a Write.
func TestInterruptBlockedRead(t *testing.T) {
	for _, afterWrite := range []bool{false, true} {
		s, _ := pair(t)
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if afterWrite {
			s.Write([]byte("x"))
		}
		go func() {
			time.Sleep(30 * time.Millisecond)
			s.SetReadDeadline(time.Now())
		}()
		start := time.Now()
		_, err := s.Read(make([]byte, 8))
		if !isTimeout(err) || time.Since(start) > time.Second {
			t.Errorf("after write %v: %v after %v; want a timeout at once", afterWrite, err, time.Since(start))
		}
	}
}

// Close unblocks a Read with net.ErrClosed.
func TestCloseUnblocksRead(t *testing.T) {
	s, _ := pair(t)
	s.Write([]byte("x"))
	go func() {
		time.Sleep(30 * time.Millisecond)
		s.Close()
	}()
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on a closed conn: %v; want net.ErrClosed", err)
	}
}

// A write deadline moved later is the one a blocked Write meets.
func TestWriteDeadlineMovedLater(t *testing.T) {
	s, _ := pair(t) // the client never reads
	s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	s.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	// (On a loaded machine the first write may come after both deadlines:
	// then nothing is written, and the timing below still holds.)
	n, err := s.Write(make([]byte, 64<<20))
	el := time.Since(start)
	if !isTimeout(err) || n == 64<<20 {
		t.Fatalf("write to a client that does not read: %d %v; want a timeout", n, err)
	}
	if el < 295*time.Millisecond || el > 2*time.Second {
		t.Errorf("write timed out after %v; want 300ms", el)
	}
}

// ReadFrom copies a large body whole, in chunks, honouring the reader's
// errors.
func TestReadFrom(t *testing.T) {
	s, c := pair(t)
	const size = 3<<20 + 17
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	n, err := s.ReadFrom(io.LimitReader(zeroReader{}, size))
	if err != nil || n != size {
		t.Fatalf("ReadFrom: %d %v; want %d", n, err, size)
	}
	s.Close()
	if n := <-got; n != size {
		t.Errorf("client got %d bytes; want %d", n, size)
	}
	boom := errors.New("boom")
	s2, _ := pair(t)
	if _, err := s2.ReadFrom(io.MultiReader(io.LimitReader(zeroReader{}, 10), errReader{boom})); err != boom {
		t.Errorf("ReadFrom of a failing reader: %v; want its error", err)
	}
}

// ReadFrom reads and writes in pieces of the listener's copy size, and
// what the client receives is what was read, in order.
func TestReadFromCopySize(t *testing.T) {
	for _, tc := range []struct {
		copySize, want int
	}{
		{0, DefaultCopySize},
		{8 << 10, 8 << 10},
		{300 << 10, 300 << 10},
	} {
		s, c := pairWith(t, 0, tc.copySize)
		const size = 1<<20 + 5
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(c)
			got <- b
		}()
		src := &countingReader{}
		n, err := s.ReadFrom(io.LimitReader(src, size))
		if err != nil || n != size {
			t.Fatalf("copy size %d: ReadFrom: %d %v; want %d", tc.copySize, n, err, size)
		}
		s.Close()
		if src.maxRead != tc.want {
			t.Errorf("copy size %d: reads of up to %d bytes; want %d", tc.copySize, src.maxRead, tc.want)
		}
		b := <-got
		if len(b) != size {
			t.Fatalf("copy size %d: client got %d bytes; want %d", tc.copySize, len(b), size)
		}
		for i, x := range b {
			if x != byte(i%251) {
				t.Fatalf("copy size %d: byte %d is %d; want %d", tc.copySize, i, x, byte(i%251))
			}
		}
	}
}

// countingReader yields the bytes i%251 and records its largest Read.
// With limit > 0 it ends there.
type countingReader struct{ off, maxRead, limit int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.maxRead = max(r.maxRead, len(p))
	if r.limit > 0 {
		if r.off >= r.limit {
			return 0, io.EOF
		}
		p = p[:min(len(p), r.limit-r.off)]
	}
	for i := range p {
		p[i] = byte((r.off + i) % 251)
	}
	r.off += len(p)
	return len(p), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// smallBuffers makes the kernel hold little between the two ends, so a
// large write blocks until the client reads.
func smallBuffers(t *testing.T, s *Conn, client net.Conn) {
	t.Helper()
	if err := s.tc.SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
}

// A client that stops reading: the Write fails once it has made no
// progress for the idle limit.
func TestWriteIdleLimit(t *testing.T) {
	const idle = 100 * time.Millisecond
	s, client := pairIdle(t, idle)
	smallBuffers(t, s, client)
	start := time.Now()
	n, err := s.Write(make([]byte, 4<<20))
	took := time.Since(start)
	if !isTimeout(err) {
		t.Fatalf("write to a client that does not read: %d bytes, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= 4<<20 {
		t.Errorf("wrote %d bytes; want part of the buffer", n)
	}
	if took < idle || took > 10*time.Second {
		t.Errorf("timed out after %v; want the idle limit %v (bounded by 10s)", took, idle)
	}
	// The connection is not reusable for writes after a timeout, as with
	// net.TCPConn; Close still works (the cleanup).
}

// A client that reads slowly but steadily outlasts the idle limit: the
// limit counts from the last progress, not from the start of the Write.
func TestWriteIdleSlowReader(t *testing.T) {
	const idle = time.Second
	s, client := pairIdle(t, idle)
	smallBuffers(t, s, client)
	const size = 1 << 20
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 16<<10)
		total := 0
		for total < size {
			n, err := client.Read(buf)
			total += n
			if err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		got <- total
	}()
	start := time.Now()
	n, err := s.Write(make([]byte, size))
	took := time.Since(start)
	if err != nil || n != size {
		t.Fatalf("write to a slow reader: %d bytes, %v after %v", n, err, took)
	}
	if took <= idle {
		t.Fatalf("the write took %v, within the idle limit %v: the test proves nothing (buffers larger than asked?)", took, idle)
	}
	if total := <-got; total != size {
		t.Errorf("client read %d bytes; want %d", total, size)
	}
}

// The write deadline applies beside the idle limit: the earlier wins.
func TestWriteDeadlineBesideIdleLimit(t *testing.T) {
	s, client := pairIdle(t, time.Minute)
	smallBuffers(t, s, client)
	start := time.Now()
	s.SetWriteDeadline(start.Add(100 * time.Millisecond))
	_, err := s.Write(make([]byte, 4<<20))
	if took := time.Since(start); !isTimeout(err) || took > 10*time.Second {
		t.Fatalf("write past its deadline: %v after %v; want a timeout at the deadline", err, took)
	}
}

// pipeSource is a sockio.PipeReader over countingReader's bytes: ReadPipe
// fills the pipe from memory (the upstream Body splices from its socket).
// It records how it was read.
type pipeSource struct {
	countingReader
	noSplice          bool // ReadPipe says sockio.ErrNoSplice
	reads, pipeReads  int
	maxPipe, pipeSize int
	buf               []byte
}

func (r *pipeSource) Read(p []byte) (int, error) {
	r.reads++
	return r.countingReader.Read(p)
}

func (r *pipeSource) ReadPipe(p *sockio.Pipe, most int) (int, error) {
	if r.noSplice {
		return 0, sockio.ErrNoSplice
	}
	r.pipeReads++
	r.maxPipe, r.pipeSize = max(r.maxPipe, most), p.Size()
	if len(r.buf) < most {
		r.buf = make([]byte, most)
	}
	n, rerr := r.countingReader.Read(r.buf[:most])
	m, err := p.Fill(r.buf[:n])
	if m != n {
		return m, fmt.Errorf("Fill: %d of %d bytes: %v", m, n, err)
	}
	return m, rerr
}

// ReadFrom splices a PipeReader, alone or in an io.LimitedReader (as
// fasthttp hands a body over), in turns of up to the pipe's size and no
// further than the limit; it reads one that cannot splice, and every
// reader when splicing is off or the kernel refuses the pipe size; and it
// counts which it did.
func TestReadFromSplices(t *testing.T) {
	const size = 3<<20 + 5
	for _, tc := range []struct {
		name             string
		pipeSize         int
		noSplice, unwrap bool
		spliced, noPipe  bool
	}{
		{name: "default", pipeSize: 0, spliced: true},
		{name: "64KiB", pipeSize: 64 << 10, spliced: true},
		{name: "not wrapped", pipeSize: 0, unwrap: true, spliced: true},
		{name: "reader says no", pipeSize: 0, noSplice: true},
		{name: "off", pipeSize: -1},
		{name: "refused", pipeSize: 1 << 32, noPipe: true}, // beyond any pipe
	} {
		var counts Counts
		s, c := pairPipes(t, 0, 0, tc.pipeSize, &counts)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(c)
			got <- b
		}()
		src := &pipeSource{noSplice: tc.noSplice}
		var r io.Reader = src
		lr := &io.LimitedReader{R: src, N: size}
		if !tc.unwrap {
			r = lr
		} else {
			src.countingReader.limit = size
		}
		n, err := s.ReadFrom(r)
		if err != nil || n != size {
			t.Fatalf("%s: ReadFrom: %d %v; want %d", tc.name, n, err, size)
		}
		if !tc.unwrap && lr.N != 0 {
			t.Errorf("%s: the LimitedReader has %d left; want 0", tc.name, lr.N)
		}
		s.Close()
		if b := <-got; len(b) != size || !isPattern(b) {
			t.Fatalf("%s: client got %d bytes, in order %v; want %d", tc.name, len(b), isPattern(b), size)
		}
		switch {
		case tc.spliced && (src.reads != 0 || src.pipeReads == 0):
			t.Errorf("%s: %d reads, %d pipe reads; want pipe reads only", tc.name, src.reads, src.pipeReads)
		case !tc.spliced && (src.reads == 0 || src.pipeReads != 0):
			t.Errorf("%s: %d reads, %d pipe reads; want reads only", tc.name, src.reads, src.pipeReads)
		}
		wantPipe := tc.pipeSize
		if wantPipe == 0 {
			wantPipe = DefaultPipeSize
		}
		if tc.spliced && (src.pipeSize != wantPipe || src.maxPipe != wantPipe) {
			t.Errorf("%s: pipe of %d bytes, turns of up to %d; want %d", tc.name, src.pipeSize, src.maxPipe, wantPipe)
		}
		want := [3]uint64{0, 1, 0} // spliced, copied, no pipe
		if tc.spliced {
			want = [3]uint64{1, 0, 0}
		}
		if tc.noPipe {
			want[2] = 1
		}
		if got := [3]uint64{counts.Spliced.Load(), counts.Copied.Load(), counts.NoPipe.Load()}; got != want {
			t.Errorf("%s: counted %d spliced, %d copied, %d without a pipe; want %v", tc.name, got[0], got[1], got[2], want)
		}
	}
}

func isPattern(b []byte) bool {
	for i, x := range b {
		if x != byte(i%251) {
			return false
		}
	}
	return true
}
