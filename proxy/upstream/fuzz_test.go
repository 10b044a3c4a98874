package upstream

import (
	"bufio"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/head"
)

// The first requests of FuzzResponse, by its method argument (mod 4).
var fuzzRequests = [...]struct {
	method, body string
	ignoreBody   bool // the instance reads the body as the next request
}{
	{method: "GET"},
	{method: "HEAD"},
	{method: "POST", body: "data"},
	{method: "GET", body: "GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n", ignoreBody: true},
}

// FuzzResponse has a loopback instance answer a first request with raw
// bytes, and closes the connection after them when closeAfter. The
// response is read to its end; then, with the fuzzed bytes all sent, a
// follow-up request on the same Transport must get its own response from
// the instance, never bytes of the first: the first exchange's connection
// is closed, or pooled with nothing buffered and nothing waiting.
//
// Seeds are in testdata/fuzz/FuzzResponse. Run it with
//
//	go test -run '^$' -fuzz '^FuzzResponse$' -fuzztime 60s ./proxy/upstream
func FuzzResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), uint8(0), false)
	f.Fuzz(func(t *testing.T, answer []byte, method uint8, closeAfter bool) {
		checkHeadRead(t, answer)
		first := fuzzRequests[method%uint8(len(fuzzRequests))]
		in := (&instance{
			answer:     string(answer),
			closeAfter: closeAfter,
			ignoreBody: first.ignoreBody,
			answered:   make(chan struct{}),
		}).start(t)
		// Short timeouts for the fuzzed exchange: an incomplete response
		// ends in one soon.
		tr := New(Config{ResponseHeaderTimeout: 20 * time.Millisecond, IdleTimeout: 20 * time.Millisecond})
		defer tr.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			req := newReq(first.method, "/first")
			req.Body = []byte(first.body)
			var rh head.Response
			resp := &Response{Header: &rh}
			if err := tr.RoundTrip(in.addr, req, resp); err != nil {
				if _, ok := AsError(err); !ok {
					t.Errorf("RoundTrip: %v; want an *Error", err)
				}
				return
			}
			if resp.Body != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the first exchange hung")
		}
		select {
		case <-in.answered:
		case <-time.After(10 * time.Second):
			t.Fatal("the instance did not answer")
		}
		if s := tr.Stats(""); s.Open != s.Idle {
			t.Fatalf("after the first exchange: %+v; want no connection in use", s)
		}
		checkPool(t, tr)

		// The follow-up is answered at once: no timeout is short.
		tr.cfg.ResponseHeaderTimeout, tr.cfg.IdleTimeout = 5*time.Second, 5*time.Second
		status, body, err := roundTrip(t, tr, in.addr, newReq("GET", "/second"))
		if err != nil || status != 200 || body != "/second" {
			t.Fatalf("follow-up: %d %q %v; want 200 %q (after %q)", status, body, err, "/second", answer)
		}
	})
}

// checkHeadRead checks that once awaitHead has a whole head, fasthttp
// parses it without reading more: on a connection that read would wait,
// for the response-header timeout.
func checkHeadRead(t *testing.T, answer []byte) {
	t.Helper()
	const size = 4 << 10
	sr := &stallReader{b: answer}
	br := bufio.NewReaderSize(sr, size)
	end, _ := headEnd(answer[:min(len(answer), size)])
	_, err := readHead(br, &head.Response{})
	if end > 0 && sr.stalls > 0 {
		t.Fatalf("readHead(%q) read past a whole head of %d bytes: %v", answer, end, err)
	}
	if end > 0 && err == nil && br.Buffered() != len(answer[:min(len(answer), size)])-end {
		t.Fatalf("readHead(%q) consumed %d bytes; the head has %d", answer, len(answer)-br.Buffered(), end)
	}
}

// errStall is what a stallReader returns once its bytes are read, as a
// socket would wait.
var errStall = errors.New("stall")

type stallReader struct {
	b      []byte
	stalls int
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.stalls++
		return 0, errStall
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
