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

// keptRHT is the response-header timeout of the kept-deadline tests, and
// keptAfter how long after a first request they send the second: the
// first one's deadline then has 3.6 s left, more than half of the second's
// 6 s, so the connection keeps it. Long enough that a loaded machine's
// delays stay well inside the margins (1.2 s either side).
const keptRHT, keptAfter = 6 * time.Second, 2400 * time.Millisecond

// secondRequest makes a request to an instance that answers after delay
// (never when negative), keptAfter after a first one on the same
// connection; it returns the second's result and how long it took.
func secondRequest(t *testing.T, delay time.Duration) (code int, body string, took time.Duration, err error) {
	t.Helper()
	addr := delayedServer(t, 0, delay)
	tr := New(Config{ResponseHeaderTimeout: keptRHT})
	t.Cleanup(tr.Close)
	if code, _, err := roundTrip(t, tr, addr, newReq("GET", "/1")); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	time.Sleep(keptAfter)
	start := time.Now()
	code, body, err = roundTrip(t, tr, addr, newReq("GET", "/2"))
	took = time.Since(start)
	if d := tr.Stats("").Dials; d != 1 {
		t.Errorf("%d dials; want 1 (one connection for both)", d)
	}
	return code, body, took, err
}

// The response-header deadline armed for one request is kept for the next
// on the same connection; a response that comes after the kept deadline
// (4.8 s in) but within the new request's timeout is still taken: the
// deadline is moved when met, and the socket reads through.
func TestKeptReadDeadlineIsExtended(t *testing.T) {
	t.Parallel()
	code, body, took, err := secondRequest(t, 4800*time.Millisecond)
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("second request (answered %v in, timeout %v): %d %q %v", took, keptRHT, code, body, err)
	}
}

// The timeout of a request whose connection kept an earlier deadline
// still counts from its own start: it fails at the response-header
// timeout, not at the kept deadline.
func TestKeptReadDeadlineTimesOutOnTime(t *testing.T) {
	t.Parallel()
	_, _, took, err := secondRequest(t, -1)
	ue, ok := AsError(err)
	if !ok || ue.Kind != KindTimeout || !ue.Sent {
		t.Fatalf("silent instance: %v; want a timeout of a sent request", err)
	}
	if took < keptRHT-50*time.Millisecond || took > keptRHT+3*time.Second {
		t.Errorf("timed out after %v; want %v (the kept deadline was %v in)", took, keptRHT, keptRHT-keptAfter)
	}
}

// A body read waits IdleTimeout from the read, not from an older deadline
// the connection kept: the header comes 2.4 s in (the 6 s header deadline
// has 3.6 s left, more than half of the body's 6 s: kept), the rest of the
// body 4.8 s after that, past the kept deadline.
func TestBodyIdleDeadlineCountsFromTheRead(t *testing.T) {
	t.Parallel()
	const idle = 6 * time.Second
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		time.Sleep(2400 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(4800 * time.Millisecond)
		io.WriteString(c, "cd")
	})
	tr := New(Config{ResponseHeaderTimeout: idle, IdleTimeout: idle})
	defer tr.Close()
	code, body, err := roundTrip(t, tr, addr, newReq("GET", "/"))
	if err != nil || code != 200 || body != "abcd" {
		t.Fatalf("%d %q %v; want the whole body", code, body, err)
	}
}
