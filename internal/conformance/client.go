package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// Response is one response a client read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Proxied reports whether an instance wrote the response (it carries the
// instance's HeaderSeq), rather than the proxy in between.
func (r *Response) Proxied() bool { return r.Header.Get(HeaderSeq) != "" }

// How a client's reading ended.
const (
	EndClosed  = "closed"  // the server closed the connection
	EndOpen    = "open"    // nothing more came within the wait
	EndReset   = "reset"   // the connection was reset
	EndGarbage = "garbage" // bytes that are not an HTTP/1.x response
)

// Exchange is what a client saw after sending raw bytes.
type Exchange struct {
	Responses []Response
	End       string // one of the End constants
	Err       error  // for EndGarbage: what did not parse
	Raw       []byte // every byte the client received
}

// Final returns the responses other than interim (1xx) ones.
func (e *Exchange) Final() []Response {
	var out []Response
	for _, r := range e.Responses {
		if r.Status >= 200 {
			out = append(out, r)
		}
	}
	return out
}

// SendOptions bound an exchange.
type SendOptions struct {
	// HalfClose shuts the client's side of the connection for writing
	// once the bytes are sent, so that the server sees the end.
	HalfClose bool
	// Want is how many final (non-1xx) responses the client expects;
	// each read until they are in waits up to FirstWait. Default 1.
	Want int
	// FirstWait bounds each read until Want responses are in; default 5s
	// (a loaded machine must not turn a slow answer into none).
	FirstWait time.Duration
	// NextWait bounds each read after that: the wait for responses
	// nobody asked for, or for the server to close; default 150ms.
	NextWait time.Duration
}

// Send connects to addr, writes raw, and reads responses until the server
// closes the connection or sends nothing more within the waits. Only a
// failure to connect or to write is an error.
func Send(addr string, raw []byte, opts SendOptions) (*Exchange, error) {
	if opts.FirstWait <= 0 {
		opts.FirstWait = 5 * time.Second
	}
	if opts.NextWait <= 0 {
		opts.NextWait = 150 * time.Millisecond
	}
	if opts.Want <= 0 {
		opts.Want = 1
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("conformance: dial %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(raw); err != nil && !isReset(err) {
		return nil, fmt.Errorf("conformance: write to %s: %w", addr, err)
	}
	if opts.HalfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	var got bytes.Buffer
	tc := &deadlineConn{Conn: c, wait: opts.FirstWait}
	br := bufio.NewReader(io.TeeReader(tc, &got))
	ex := &Exchange{}
	for {
		_, err := br.Peek(1)
		if err != nil {
			ex.End = endOf(err)
			break
		}
		resp, err := http.ReadResponse(br, nil)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			ex.End, ex.Err = EndGarbage, err
			if e := endOf(err); e == EndReset {
				ex.End = e
			}
			break
		}
		ex.Responses = append(ex.Responses, Response{Status: resp.StatusCode, Header: resp.Header, Body: body})
		if len(ex.Final()) >= opts.Want {
			tc.wait = opts.NextWait
		}
	}
	ex.Raw = got.Bytes()
	return ex, nil
}

// deadlineConn sets a read deadline of wait before each read.
type deadlineConn struct {
	net.Conn
	wait time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.wait))
	return c.Conn.Read(p)
}

func endOf(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return EndClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return EndOpen
	case isReset(err):
		return EndReset
	}
	return EndGarbage
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Summary renders an exchange in a few words: each response's status and
// who wrote it ("fwd" for the instance, "own" for the proxy), then how it
// ended, e.g. "200 fwd" or "400 own, closed".
func (e *Exchange) Summary() string {
	var parts []string
	for _, r := range e.Responses {
		who := "own"
		if r.Proxied() {
			who = "fwd"
		}
		parts = append(parts, fmt.Sprintf("%d %s", r.Status, who))
	}
	if len(parts) == 0 {
		parts = append(parts, "no answer")
	}
	switch e.End {
	case EndClosed, EndReset:
		parts = append(parts, e.End)
	case EndGarbage:
		parts = append(parts, "not HTTP/1")
	}
	return strings.Join(parts, ", ")
}
