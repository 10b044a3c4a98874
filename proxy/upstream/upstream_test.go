package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/head"
)

func TestReadChunkSize(t *testing.T) {
	tests := []struct {
		line string
		want int64
		ok   bool
	}{
		{"a\r\n", 10, true},
		{"A;name=value\r\n", 10, true},
		{"ff \r\n", 255, true},
		{"0\r\n", 0, true},
		{"10\n", 16, true},
		{"\r\n", 0, false},
		{"zz\r\n", 0, false},
		{"-1\r\n", 0, false},
		{"1x\r\n", 0, false},
		{"1000000000000000\r\n", 0, false}, // 16 hex digits: too large
		{"12", 0, false},                   // no line end
	}
	for _, tt := range tests {
		got, err := readChunkSize(bufio.NewReader(strings.NewReader(tt.line)))
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("readChunkSize(%q) = %d, %v; want %d, ok=%v", tt.line, got, err, tt.want, tt.ok)
		}
	}
}

// rawServer answers each connection with handle, on loopback.
func rawServer(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return testutil.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		handle(c, bufio.NewReader(c))
	})
}

// readRequest reads one request head and its Content-Length body.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, req.Body)
	return req, nil
}

func newReq(method, path string) *Request {
	h := &head.Request{}
	h.SetMethod(method)
	h.SetRequestURI(path)
	h.SetHost("example.test")
	return &Request{Header: h}
}

func roundTrip(t *testing.T, tr *Transport, addr string, req *Request) (int, string, error) {
	t.Helper()
	var rh head.Response
	resp := &Response{Header: &rh}
	if err := tr.RoundTrip(addr, req, resp); err != nil {
		return 0, "", err
	}
	var body []byte
	if resp.Body != nil {
		var err error
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return rh.StatusCode(), string(body), err
		}
	}
	return rh.StatusCode(), string(body), nil
}

func TestChunkedResponseWithTrailerKeepsConnection(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
				"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
		}
	})
	tr := New(Config{})
	defer tr.Close()
	for i := 0; i < 3; i++ {
		status, body, err := roundTrip(t, tr, addr, newReq("GET", "/"))
		if err != nil || status != 200 || body != "hello world" {
			t.Fatalf("exchange %d: %d %q %v", i, status, body, err)
		}
	}
	if d := tr.Stats("").Dials; d != 1 {
		t.Errorf("3 exchanges dialled %d connections; want 1 (trailer consumed, connection reused)", d)
	}
}

func TestMalformedChunkedBody(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n")
	})
	tr := New(Config{})
	defer tr.Close()
	_, _, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if !errors.Is(err, ErrMalformedChunk) {
		t.Errorf("err = %v; want ErrMalformedChunk", err)
	}
	if s := tr.Stats(""); s.Open != 0 {
		t.Errorf("%d connections open after a malformed body; want 0", s.Open)
	}
}

func TestCloseDelimitedBody(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nuntil close")
	})
	tr := New(Config{})
	defer tr.Close()
	status, body, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if err != nil || status != 200 || body != "until close" {
		t.Errorf("got %d %q %v", status, body, err)
	}
	if s := tr.Stats(""); s.Open != 0 || s.Idle != 0 {
		t.Errorf("close-delimited connection kept: %+v", s)
	}
}

func TestInformationalResponsesSkipped(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := New(Config{})
	defer tr.Close()
	if status, body, err := roundTrip(t, tr, addr, newReq("GET", "/")); err != nil || status != 200 || body != "ok" {
		t.Errorf("got %d %q %v; want 200 ok", status, body, err)
	}
}

func TestPoolLimitWaitsThenFails(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2) // a request was read
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			arrived <- struct{}{}
			<-release
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	// ConnectTimeout also bounds the wait of the waiter that must get the
	// connection: it leaves a loaded machine time to release it.
	tr := New(Config{MaxConns: 1, ConnectTimeout: 2 * time.Second})
	defer tr.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if status, _, err := roundTrip(t, tr, addr, newReq("GET", "/")); err != nil || status != 200 {
			t.Errorf("first request: %d %v", status, err)
		}
	}()
	select { // the first request holds the only connection
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the instance in 10s")
	}
	_, _, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if ue, ok := AsError(err); !ok || ue.Kind != KindPoolTimeout {
		t.Errorf("second request with the pool full: %v; want %s", err, KindPoolTimeout)
	}
	// A waiter gets the connection as soon as it is released.
	done := make(chan error, 1)
	go func() {
		_, _, err := roundTrip(t, tr, addr, newReq("GET", "/"))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Errorf("waiting request: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := New(Config{})
	defer tr.Close()
	_, _, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if ue, ok := AsError(err); !ok || ue.Kind != KindConnectRefused || ue.Sent {
		t.Errorf("closed port: %v; want %s, not sent", err, KindConnectRefused)
	}
}

func TestEarlyResponseDoesNotDeadlock(t *testing.T) {
	// The instance answers 413 at once and never reads the body.
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!")
		time.Sleep(500 * time.Millisecond)
	})
	tr := New(Config{})
	defer tr.Close()
	req := newReq("POST", "/")
	req.BodyStream, req.BodyLen = io.LimitReader(zeros{}, 64<<20), 64<<20
	var rh head.Response
	resp := &Response{Header: &rh}
	done := make(chan error, 1)
	go func() { done <- tr.RoundTrip(addr, req, resp) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exchange deadlocked on an early response")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rh.StatusCode() != 413 || string(body) != "big!" || !resp.BodyPending {
		t.Errorf("got %d %q pending=%v; want 413 big! pending", rh.StatusCode(), body, resp.BodyPending)
	}
	if s := tr.Stats(""); s.Idle != 0 {
		t.Errorf("a connection with an unfinished request body went back to the pool")
	}
}

func TestStaleIdleConnectionIsRetried(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		mu.Lock()
		conns++
		mu.Unlock()
		if _, err := readRequest(br); err != nil {
			return
		}
		// Answer one request, then close as if the keep-alive timer fired.
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := New(Config{})
	defer tr.Close()
	for i := 0; i < 3; i++ {
		if status, _, err := roundTrip(t, tr, addr, newReq("GET", "/")); err != nil || status != 200 {
			t.Fatalf("GET %d: %d %v", i, status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A POST with a streamed body, which could not be sent again, is not
	// sent on it either: the connection is found closed first.
	time.Sleep(20 * time.Millisecond)
	req := newReq("POST", "/")
	req.BodyStream, req.BodyLen = bytes.NewReader([]byte("data")), 4
	if status, _, err := roundTrip(t, tr, addr, req); err != nil || status != 200 {
		t.Errorf("streamed POST after the instance closed the idle connection: %d %v; want 200", status, err)
	}
	if s := tr.Stats(""); s.Dials != 4 {
		t.Errorf("%d dials; want 4 (one per request)", s.Dials)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Regression: a streamed upload that took longer to send than the
// response-header timeout failed, because that timeout ran from the start
// of the body instead of its end.
func TestSlowUploadOutlastsResponseHeaderTimeout(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	// The timeout leaves a loaded machine time to answer once the body is
	// sent; the upload takes twice as long.
	tr := New(Config{ResponseHeaderTimeout: time.Second})
	defer tr.Close()
	req := newReq("POST", "/")
	req.BodyStream, req.BodyLen = &slowReader{chunks: 8, every: 250 * time.Millisecond}, -1
	if status, body, err := roundTrip(t, tr, addr, req); err != nil || status != 200 || body != "ok" {
		t.Errorf("2 s upload with a 1 s header timeout: %d %q %v; want 200 ok", status, body, err)
	}
}

// slowReader yields chunks of 1 KiB, one every interval.
type slowReader struct {
	chunks int
	every  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.chunks == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.every)
	s.chunks--
	n := min(len(p), 1024)
	clear(p[:n])
	return n, nil
}
