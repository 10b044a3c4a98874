package conformance

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Options change how an Instance reads requests.
type Options struct {
	// IgnoreGETBodies makes the instance read a GET's head and never its
	// body, as a lax server does (Python's http.server reads no body the
	// handler does not ask for): the body's bytes are parsed as the next
	// request on the connection. Off: every body is read by its framing.
	IgnoreGETBodies bool
}

// Fault is a run of bytes an instance received and could not attribute
// to a well-framed request. The instance closes the connection after it,
// without an answer.
type Fault struct {
	Conn  int
	Bytes []byte
	// Truncated: the bytes are the valid beginning of a request that the
	// peer cut off by closing the connection. Otherwise Err says what
	// does not parse.
	Truncated bool
	Err       error
}

func (f Fault) String() string {
	if f.Truncated {
		return fmt.Sprintf("conn %d: truncated request %q", f.Conn, f.Bytes)
	}
	return fmt.Sprintf("conn %d: %v: %q", f.Conn, f.Err, f.Bytes)
}

// Record is what an instance received, parsed and could not parse.
type Record struct {
	Received [][]byte // the raw bytes of each connection, in order
	Requests []*Request
	Faults   []Fault
}

// Bytes returns how many bytes the instance received.
func (r *Record) Bytes() int {
	n := 0
	for _, b := range r.Received {
		n += len(b)
	}
	return n
}

// Malformed returns the faults that are not truncated requests.
func (r *Record) Malformed() []Fault {
	var out []Fault
	for _, f := range r.Faults {
		if !f.Truncated {
			out = append(out, f)
		}
	}
	return out
}

// Request returns the request the instance numbered seq, or nil.
func (r *Record) Request(seq int) *Request {
	for _, q := range r.Requests {
		if q.Seq == seq {
			return q
		}
	}
	return nil
}

// Transcript renders the raw bytes of every connection that received
// any, quoted.
func (r *Record) Transcript() string {
	var b strings.Builder
	for i, c := range r.Received {
		if len(c) > 0 {
			fmt.Fprintf(&b, "conn %d: %q\n", i+1, c)
		}
	}
	return b.String()
}

// Instance is a raw TCP stand-in for a deployment's instance. It keeps
// every byte it receives, parses the bytes of each connection as a
// sequence of HTTP/1.1 requests with Parse, answers each request, and
// keeps what it could not parse as a Fault.
//
// An answer is 200 with the header X-Instance-Seq (the request's Seq) and
// the body "seq=N conn=C marker=M\n", where M is the request's X-Marker
// header ("-" without one); an answer to HEAD has Content-Length 0 and no
// body. A request with "Connection: close" gets "Connection: close" and
// the connection is closed after the answer.
type Instance struct {
	ln   net.Listener
	opts Options

	mu    sync.Mutex
	rec   Record
	seq   int // of the last request parsed
	open  map[net.Conn]bool
	last  time.Time // of the last connection or bytes
	close bool

	wg sync.WaitGroup
}

// HeaderSeq is the header of an instance's answer that carries the
// request's Seq; HeaderMarker is the request header an answer echoes.
const (
	HeaderSeq    = "X-Instance-Seq"
	HeaderMarker = "X-Marker"
)

// Listen starts an Instance on a loopback port the kernel picks.
func Listen(opts Options) (*Instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("conformance: instance: %w", err)
	}
	in := &Instance{ln: ln, opts: opts, open: map[net.Conn]bool{}, last: time.Now()}
	in.wg.Add(1)
	go in.accept()
	return in, nil
}

// Addr returns the instance's host:port.
func (in *Instance) Addr() string { return in.ln.Addr().String() }

// Close stops the instance: the listener and every open connection close,
// and Close returns once their goroutines have ended.
func (in *Instance) Close() error {
	err := in.ln.Close()
	in.mu.Lock()
	in.close = true
	for c := range in.open {
		c.Close()
	}
	in.mu.Unlock()
	in.wg.Wait()
	return err
}

// Snapshot returns a copy of what the instance has received so far.
func (in *Instance) Snapshot() *Record {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := &Record{
		Requests: append([]*Request(nil), in.rec.Requests...),
		Faults:   append([]Fault(nil), in.rec.Faults...),
	}
	for _, c := range in.rec.Received {
		r.Received = append(r.Received, append([]byte(nil), c...))
	}
	return r
}

// Reset forgets what the instance has received so far; connections and
// the numbering of connections and requests go on.
func (in *Instance) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rec.Requests, in.rec.Faults = nil, nil
	for i := range in.rec.Received {
		in.rec.Received[i] = nil
	}
}

// Quiet waits until the instance has received nothing for d, or until
// most has passed.
func (in *Instance) Quiet(d, most time.Duration) {
	deadline := time.Now().Add(most)
	for {
		in.mu.Lock()
		idle := time.Since(in.last)
		in.mu.Unlock()
		if idle >= d || time.Now().After(deadline) {
			return
		}
		time.Sleep(min(d-idle, time.Until(deadline)) + time.Millisecond)
	}
}

func (in *Instance) accept() {
	defer in.wg.Done()
	for {
		c, err := in.ln.Accept()
		if err != nil {
			return
		}
		in.mu.Lock()
		if in.close {
			in.mu.Unlock()
			c.Close()
			return
		}
		in.open[c] = true
		in.rec.Received = append(in.rec.Received, nil)
		id := len(in.rec.Received)
		in.last = time.Now()
		in.mu.Unlock()
		in.wg.Add(1)
		go in.serve(c, id)
	}
}

func (in *Instance) serve(c net.Conn, id int) {
	defer in.wg.Done()
	defer func() {
		in.mu.Lock()
		delete(in.open, c)
		in.mu.Unlock()
		c.Close()
	}()
	var buf []byte
	rd := make([]byte, 32<<10)
	for {
		for len(buf) > 0 {
			r, n, err := Parse(buf, in.opts.IgnoreGETBodies)
			if errors.Is(err, ErrIncomplete) {
				break
			}
			if err != nil {
				in.fault(Fault{Conn: id, Bytes: buf, Err: err})
				return
			}
			buf = buf[n:]
			r.Conn = id
			r.Body = append([]byte(nil), r.Body...)
			r.Raw = append([]byte(nil), r.Raw...)
			seq := in.add(r)
			closing := hasToken(r.Values("Connection"), "close")
			if _, err := c.Write(answer(r, seq, closing)); err != nil || closing {
				if closing && len(buf) > 0 {
					in.fault(Fault{Conn: id, Bytes: buf, Err: errors.New("bytes after a request with Connection: close")})
				}
				return
			}
		}
		n, err := c.Read(rd)
		if n > 0 {
			in.mu.Lock()
			in.rec.Received[id-1] = append(in.rec.Received[id-1], rd[:n]...)
			in.last = time.Now()
			in.mu.Unlock()
			buf = append(buf, rd[:n]...)
		}
		if err != nil {
			if len(buf) > 0 {
				in.fault(Fault{Conn: id, Bytes: buf, Truncated: true})
			}
			return
		}
	}
}

func (in *Instance) add(r *Request) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq++
	r.Seq = in.seq
	in.rec.Requests = append(in.rec.Requests, r)
	return r.Seq
}

func (in *Instance) fault(f Fault) {
	f.Bytes = append([]byte(nil), f.Bytes...)
	in.mu.Lock()
	in.rec.Faults = append(in.rec.Faults, f)
	in.mu.Unlock()
}

// answer renders the instance's response to r.
func answer(r *Request, seq int, closing bool) []byte {
	marker := "-"
	if m := r.Values(HeaderMarker); len(m) > 0 {
		marker = m[0]
	}
	body := fmt.Sprintf("seq=%d conn=%d marker=%s\n", seq, r.Conn, marker)
	if r.Method == "HEAD" {
		body = ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%s: %d\r\nContent-Length: %d\r\n", HeaderSeq, seq, len(body))
	if closing {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return []byte(b.String())
}

// AnswerMarker returns the marker an instance's answer body names, and
// whether body is such an answer.
func AnswerMarker(body []byte) (string, bool) {
	s := strings.TrimSuffix(string(body), "\n")
	i := strings.Index(s, " marker=")
	if !strings.HasPrefix(s, "seq=") || i < 0 {
		return "", false
	}
	return s[i+len(" marker="):], true
}

// hasToken reports whether a comma-separated list in any of vs holds tok
// (without regard to ASCII case).
func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}
