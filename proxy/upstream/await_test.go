package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// echoLenServer answers every request with the length of its body.
func echoLenServer(t *testing.T, before time.Duration) string {
	return rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			time.Sleep(before) // let the client's send buffer fill up
			req, err := readRequestBody(br)
			if err != nil {
				return
			}
			n := fmt.Sprint(len(req))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+fmt.Sprint(len(n))+"\r\n\r\n"+n)
		}
	})
}

// readRequestBody reads one request and returns its body.
func readRequestBody(br *bufio.Reader) ([]byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

// A request larger than the socket's send buffer is written in part by
// the awaited send and finished by an ordinary write; the instance gets
// every byte, and the connection carries the next request.
func TestAwaitedSendFinishesAPartialWrite(t *testing.T) {
	addr := echoLenServer(t, 100*time.Millisecond)
	tr := New(Config{Dial: func(addr string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.(*net.TCPConn).SetWriteBuffer(4 << 10)
		}
		return c, err
	}})
	defer tr.Close()
	for i, size := range []int{maxAwaitRequest - 512, 10, maxAwaitRequest - 512} {
		req := newReq("POST", "/")
		req.Body = bytes.Repeat([]byte{'x'}, size)
		status, body, err := roundTrip(t, tr, addr, req)
		if err != nil || status != 200 || body != fmt.Sprint(size) {
			t.Fatalf("request %d: %d %q %v; want 200 %d", i, status, body, err, size)
		}
	}
	if d := tr.Stats("").Dials; d != 1 {
		t.Errorf("%d dials; want 1", d)
	}
}

// The wait for the response after an awaited send ends at the
// response-header timeout, as a timeout of a sent request.
func TestAwaitedSendTimesOut(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		time.Sleep(2 * time.Second)
	})
	tr := New(Config{ResponseHeaderTimeout: 100 * time.Millisecond})
	defer tr.Close()
	start := time.Now()
	_, _, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	ue, ok := AsError(err)
	if !ok || ue.Kind != KindTimeout || !ue.Sent {
		t.Fatalf("silent instance: %v; want a timeout of a sent request", err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Errorf("timed out after %v; want about 100ms", el)
	}
}

// An in-memory POST, which could not be sent again, is not sent on an
// idle connection the instance has closed: the awaited send finds it
// closed first, and the POST goes on a new connection.
func TestAwaitedSendSkipsAClosedConnection(t *testing.T) {
	closed := make(chan struct{}, 1)
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close() // as if its keep-alive timer fired
		closed <- struct{}{}
	})
	tr := New(Config{ResponseHeaderTimeout: 5 * time.Second})
	defer tr.Close()
	if status, _, err := roundTrip(t, tr, addr, newReq("GET", "/")); err != nil || status != 200 {
		t.Fatalf("GET: %d %v", status, err)
	}
	<-closed
	time.Sleep(20 * time.Millisecond) // the FIN arrives
	req := newReq("POST", "/")
	req.Body = []byte("data")
	if status, body, err := roundTrip(t, tr, addr, req); err != nil || status != 200 || body != "ok" {
		t.Errorf("POST after the instance closed the idle connection: %d %q %v; want 200 ok", status, body, err)
	}
	if s := tr.Stats(""); s.Stale != 1 || s.Dials != 2 {
		t.Errorf("%+v; want 1 stale connection, 2 dials", s)
	}
}
