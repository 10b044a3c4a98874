package upstream

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// delayedServer answers each request on a connection with a small 200
// response, the nth after delays[n] (0 past the end), or never when the
// delay is negative.
func delayedServer(t *testing.T, delays ...time.Duration) string {
	t.Helper()
	return rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, err := readRequest(br); err != nil {
				return
			}
			var d time.Duration
			if i < len(delays) {
				d = delays[i]
			}
			if d < 0 {
				io.Copy(io.Discard, br) // until the proxy gives up
				return
			}
			time.Sleep(d)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

// The response-header deadline armed for one request is kept for the next
// on the same connection when enough of it is left; a response that comes
// after the kept deadline but within the new request's timeout is still
// taken (the deadline is moved when met), and the socket reads through.
func TestKeptReadDeadlineIsExtended(t *testing.T) {
	const rht = 3 * time.Second
	addr := delayedServer(t, 0, 2400*time.Millisecond)
	tr := New(Config{ResponseHeaderTimeout: rht})
	defer tr.Close()
	if code, _, err := roundTrip(t, tr, addr, newReq("GET", "/1")); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	// 1.2 s later the first deadline has 1.8 s left, more than half of the
	// new 3 s: it is kept. The answer comes 2.4 s in, after it.
	time.Sleep(1200 * time.Millisecond)
	start := time.Now()
	code, body, err := roundTrip(t, tr, addr, newReq("GET", "/2"))
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("second request (answered %v in, timeout %v): %d %q %v", time.Since(start), rht, code, body, err)
	}
	if d := tr.Stats("").Dials; d != 1 {
		t.Errorf("%d dials; want 1 (one connection for both)", d)
	}
}

// The timeout of a request whose connection kept an earlier deadline
// still counts from its own start: it fails at the response-header
// timeout, not at the kept deadline.
func TestKeptReadDeadlineTimesOutOnTime(t *testing.T) {
	const rht = 3 * time.Second
	addr := delayedServer(t, 0, -1)
	tr := New(Config{ResponseHeaderTimeout: rht})
	defer tr.Close()
	if code, _, err := roundTrip(t, tr, addr, newReq("GET", "/1")); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	time.Sleep(1200 * time.Millisecond)
	start := time.Now()
	_, _, err := roundTrip(t, tr, addr, newReq("GET", "/2"))
	el := time.Since(start)
	ue, ok := AsError(err)
	if !ok || ue.Kind != KindTimeout || !ue.Sent {
		t.Fatalf("silent instance: %v; want a timeout of a sent request", err)
	}
	if el < rht-50*time.Millisecond || el > rht+3*time.Second {
		t.Errorf("timed out after %v; want %v (the kept deadline was %v in)", el, rht, rht-1200*time.Millisecond)
	}
}

// A body read waits IdleTimeout from the read, not from an older deadline
// the connection kept: the header comes 1.2 s in (the 3 s header deadline
// has 1.8 s left, more than half of the body's 3 s: kept), the rest of the
// body 2.4 s after that, past the kept deadline.
func TestBodyIdleDeadlineCountsFromTheRead(t *testing.T) {
	const idle = 3 * time.Second
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		time.Sleep(1200 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(2400 * time.Millisecond)
		io.WriteString(c, "cd")
	})
	tr := New(Config{ResponseHeaderTimeout: idle, IdleTimeout: idle})
	defer tr.Close()
	code, body, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if err != nil || code != 200 || body != "abcd" {
		t.Fatalf("%d %q %v; want the whole body", code, body, err)
	}
}
