package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/proxy/internal/sockio"
)

// readAllPipe reads b to its end through ReadPipe, splicing each pipeful
// on to a loopback connection as the proxy's client connection would, and
// returns what came out at the other end.
func readAllPipe(t *testing.T, b *Body, p *sockio.Pipe) ([]byte, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	in, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(in)
		got <- b
	}()
	orc, _ := out.(*net.TCPConn).SyscallConn()
	var rerr error
	for {
		n, err := b.ReadPipe(p, p.Size())
		if n != p.Len() {
			t.Fatalf("ReadPipe moved %d bytes; the pipe holds %d", n, p.Len())
		}
		var werr error
		for p.Len() > 0 && werr == nil {
			orc.Write(func(fd uintptr) bool {
				_, werr = p.SpliceTo(fd)
				return werr != syscall.EAGAIN
			})
		}
		if werr != nil {
			t.Fatalf("SpliceTo: %v", werr)
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	out.Close()
	return <-got, rerr
}

// newPipe returns a pipe of 64 KiB, closed when the test ends.
func newPipe(t *testing.T) *sockio.Pipe {
	t.Helper()
	p, err := sockio.NewPipePool(64 << 10).Get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func roundTripBody(t *testing.T, tr *Transport, addr, path string) *Response {
	t.Helper()
	resp := &Response{Header: &head.Response{}}
	if err := tr.RoundTrip(addr, newReq("GET", path), resp); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// A body with a Content-Length is spliced to its last byte and no
// further: bytes an instance sends beyond it do not reach the pipe, and a
// connection whose body was spliced to its end is reused.
func TestReadPipeStopsAtContentLength(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := readRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/extra" {
				// A broken instance: more than it said, in the same write.
				c.Write(append(resp[:len(resp):len(resp)], "EXTRA"...))
				return
			}
			c.Write(resp)
		}
	})
	tr := New(Config{})
	defer tr.Close()
	p := newPipe(t)
	for i := range 3 {
		resp := roundTripBody(t, tr, addr, "/")
		got, err := readAllPipe(t, resp.Body, p)
		if err != nil || !bytes.Equal(got, body) || !resp.Body.Complete() {
			t.Fatalf("exchange %d: %d bytes, equal %v, complete %v, %v", i, len(got), bytes.Equal(got, body), resp.Body.Complete(), err)
		}
		resp.Body.Close()
	}
	if d := tr.Stats("").Dials; d != 1 {
		t.Errorf("3 exchanges dialled %d connections; want 1", d)
	}
	r := roundTripBody(t, tr, addr, "/extra")
	got, err := readAllPipe(t, r.Body, p)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("body followed by more: %d bytes (ends %q), %v; want the %d of the body", len(got), got[max(0, len(got)-8):], err, len(body))
	}
	r.Body.Close()
}

// A body that ends before its Content-Length says fails with
// io.ErrUnexpectedEOF; one that runs until the connection closes ends
// there; a chunked one is not spliced.
func TestReadPipeEnds(t *testing.T) {
	tr := New(Config{})
	defer tr.Close()
	p := newPipe(t)

	short := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
		c.Write(make([]byte, 70000))
	})
	resp := roundTripBody(t, tr, short, "/")
	got, err := readAllPipe(t, resp.Body, p)
	if len(got) != 70000 || !errors.Is(err, io.ErrUnexpectedEOF) || resp.Body.Complete() {
		t.Errorf("body cut short: %d bytes, %v, complete %v; want 70000 and unexpected EOF", len(got), err, resp.Body.Complete())
	}
	resp.Body.Close()

	untilClose := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n")
		c.Write(bytes.Repeat([]byte("z"), 200000))
	})
	resp = roundTripBody(t, tr, untilClose, "/")
	got, err = readAllPipe(t, resp.Body, p)
	if len(got) != 200000 || err != nil || !resp.Body.Complete() {
		t.Errorf("body until close: %d bytes, %v, complete %v; want 200000", len(got), err, resp.Body.Complete())
	}
	resp.Body.Close()

	chunked := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	})
	resp = roundTripBody(t, tr, chunked, "/")
	if n, err := resp.Body.ReadPipe(p, p.Size()); n != 0 || err != sockio.ErrNoSplice || p.Len() != 0 {
		t.Errorf("chunked body: %d, %v, pipe holds %d; want 0 and ErrNoSplice", n, err, p.Len())
	}
	if b, err := io.ReadAll(resp.Body); string(b) != "hello" || err != nil {
		t.Errorf("chunked body read after ErrNoSplice: %q, %v", b, err)
	}
	resp.Body.Close()
}
