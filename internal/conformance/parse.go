package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Request is one request as an instance parsed it off the wire.
type Request struct {
	Conn    int // the instance's connection it came on, from 1
	Seq     int // its place among all requests the instance parsed, from 1
	Method  string
	Target  string
	Version string
	Header  []Field // in the order received, names as sent
	Body    []byte  // the content, with chunked framing removed
	Raw     []byte  // the request's bytes as received
}

// Field is one header field line.
type Field struct{ Name, Value string }

// Values returns the values of every line of the header named name
// (compared without regard to ASCII case), in order.
func (r *Request) Values(name string) []string {
	var vs []string
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// ErrIncomplete says that the bytes are a valid beginning of a request
// that has not ended yet.
var ErrIncomplete = errors.New("conformance: incomplete request")

// SyntaxError says where and why bytes are not a well-framed request.
type SyntaxError struct {
	Offset int // of the first byte that does not fit
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("conformance: malformed request at byte %d: %s", e.Offset, e.Reason)
}

// Limits of Parse: a head or a body beyond them is refused, so that a
// peer cannot make an instance buffer without bound.
const (
	maxHeadBytes = 64 << 10
	maxBodyBytes = 16 << 20
)

// Parse reads one request from the start of b, strictly by RFC 9112:
//
//   - every line ends in CRLF; no empty line before the request line; no
//     bare CR or LF anywhere in the head;
//   - the request line is token SP target SP "HTTP/1.1", the target of
//     visible ASCII, in origin form ("/..."), absolute form ("scheme:..."),
//     "*" (OPTIONS only) or authority form (CONNECT only);
//   - a field is token ":" OWS value OWS, the value of visible ASCII,
//     obs-text, spaces and tabs; no obsolete line folding;
//   - exactly one Host field;
//   - the body is framed by exactly one of: one Transfer-Encoding field
//     that is "chunked", one Content-Length field of digits, or neither
//     (no body). Chunk sizes are hex digits, extensions ";name[=value]"
//     of tokens or quoted strings, trailer fields as header fields.
//
// With skipGETBody a GET's body is left unread, as a lax server does:
// its bytes are what the next call parses. Parse returns the request and
// how many bytes of b it took, ErrIncomplete when b ends inside a
// request, or a *SyntaxError.
func Parse(b []byte, skipGETBody bool) (*Request, int, error) {
	p := parser{b: b}
	r, err := p.request(skipGETBody)
	if err != nil {
		return nil, 0, err
	}
	r.Raw = b[:p.i]
	return r, p.i, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) fail(at int, format string, args ...any) error {
	return &SyntaxError{Offset: at, Reason: fmt.Sprintf(format, args...)}
}

// line returns the next line without its CRLF.
func (p *parser) line(limit int) ([]byte, error) {
	start := p.i
	j := bytes.IndexByte(p.b[start:], '\n')
	if j < 0 {
		if cr := bytes.IndexByte(p.b[start:], '\r'); cr >= 0 && cr+1 < len(p.b)-start {
			return nil, p.fail(start+cr, "bare CR")
		}
		if len(p.b)-start > limit {
			return nil, p.fail(start+limit, "line longer than %d bytes", limit)
		}
		return nil, ErrIncomplete
	}
	if j == 0 || p.b[start+j-1] != '\r' {
		return nil, p.fail(start+j, "bare LF")
	}
	l := p.b[start : start+j-1]
	if cr := bytes.IndexByte(l, '\r'); cr >= 0 {
		return nil, p.fail(start+cr, "bare CR")
	}
	p.i = start + j + 1
	return l, nil
}

func (p *parser) request(skipGETBody bool) (*Request, error) {
	r := &Request{}
	at := p.i
	l, err := p.line(maxHeadBytes)
	if err != nil {
		return nil, err
	}
	if err := p.requestLine(r, l, at); err != nil {
		return nil, err
	}
	if r.Header, err = p.fields(); err != nil {
		return nil, err
	}
	if hosts := r.Values("Host"); len(hosts) != 1 {
		return nil, p.fail(at, "%d Host fields, want 1", len(hosts))
	}
	te, cl := r.Values("Transfer-Encoding"), r.Values("Content-Length")
	switch {
	case len(te) > 0 && len(cl) > 0:
		return nil, p.fail(at, "both Transfer-Encoding and Content-Length")
	case len(te) > 1:
		return nil, p.fail(at, "%d Transfer-Encoding fields", len(te))
	case len(cl) > 1:
		return nil, p.fail(at, "%d Content-Length fields", len(cl))
	case len(te) == 1 && !strings.EqualFold(te[0], "chunked"):
		return nil, p.fail(at, "Transfer-Encoding %q, want chunked", te[0])
	}
	n := int64(-1) // chunked
	if len(te) == 0 {
		n = 0
		if len(cl) == 1 {
			if n, err = contentLength(cl[0]); err != nil {
				return nil, p.fail(at, "Content-Length %q: %v", cl[0], err)
			}
		}
	}
	if skipGETBody && r.Method == "GET" {
		return r, nil
	}
	if n >= 0 {
		if int64(len(p.b)-p.i) < n {
			return nil, ErrIncomplete
		}
		r.Body = p.b[p.i : p.i+int(n)]
		p.i += int(n)
		return r, nil
	}
	r.Body, err = p.chunked()
	return r, err
}

func contentLength(v string) (int64, error) {
	if v == "" || len(v) > 18 || strings.TrimLeft(v, "0123456789") != "" {
		return 0, errors.New("not a decimal number")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil && n > maxBodyBytes {
		err = fmt.Errorf("over %d bytes", maxBodyBytes)
	}
	return n, err
}

func (p *parser) requestLine(r *Request, l []byte, at int) error {
	parts := bytes.Split(l, []byte(" "))
	if len(parts) != 3 {
		return p.fail(at, "request line %q: want method SP target SP version", l)
	}
	method, target, version := parts[0], parts[1], parts[2]
	if len(method) == 0 || !isToken(method) {
		return p.fail(at, "method %q is not a token", method)
	}
	if len(target) == 0 {
		return p.fail(at, "empty target")
	}
	for k, c := range target {
		if c <= ' ' || c >= 0x7f {
			return p.fail(at+len(method)+1+k, "byte %#02x in the target", c)
		}
	}
	if string(version) != "HTTP/1.1" {
		return p.fail(at, "version %q, want HTTP/1.1", version)
	}
	r.Method, r.Target, r.Version = string(method), string(target), string(version)
	switch {
	case target[0] == '/':
	case isAbsoluteURI(target):
	case string(target) == "*" && r.Method == "OPTIONS":
	case r.Method == "CONNECT" && bytes.IndexByte(target, '/') < 0 && bytes.IndexByte(target, ':') > 0:
	default:
		return p.fail(at, "target %q in no form that %s allows", target, method)
	}
	return nil
}

// fields reads header (or trailer) field lines up to and including the
// empty line.
func (p *parser) fields() ([]Field, error) {
	var fs []Field
	start := p.i
	for {
		at := p.i
		l, err := p.line(maxHeadBytes)
		if err != nil {
			return nil, err
		}
		if p.i-start > maxHeadBytes {
			return nil, p.fail(at, "head over %d bytes", maxHeadBytes)
		}
		if len(l) == 0 {
			return fs, nil
		}
		if l[0] == ' ' || l[0] == '\t' {
			return nil, p.fail(at, "line folding (a line begins with white space)")
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return nil, p.fail(at, "field line %q has no name and colon", l)
		}
		name := l[:colon]
		if !isToken(name) {
			return nil, p.fail(at, "field name %q is not a token", name)
		}
		value := bytes.Trim(l[colon+1:], " \t")
		for k, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, p.fail(at+colon+1+k, "byte %#02x in the value of %s", c, name)
			}
		}
		fs = append(fs, Field{Name: string(name), Value: string(value)})
	}
}

// chunked reads a chunked body and its trailer section.
func (p *parser) chunked() ([]byte, error) {
	var body []byte
	for {
		at := p.i
		l, err := p.line(4096)
		if err != nil {
			return nil, err
		}
		size, ext, _ := bytes.Cut(l, []byte(";"))
		if len(size) == 0 || len(size) > 15 || len(bytes.Trim(size, "0123456789abcdefABCDEF")) > 0 {
			return nil, p.fail(at, "chunk size %q is not hex digits", size)
		}
		if bytes.IndexByte(l, ';') >= 0 && !validChunkExt(ext) {
			return nil, p.fail(at, "chunk extension %q", ext)
		}
		n, _ := strconv.ParseInt(string(size), 16, 64)
		if int64(len(body))+n > maxBodyBytes {
			return nil, p.fail(at, "body over %d bytes", maxBodyBytes)
		}
		if n == 0 {
			if _, err := p.fields(); err != nil {
				return nil, err
			}
			return body, nil
		}
		if int64(len(p.b)-p.i) < n+2 {
			if rest := p.b[p.i:]; int64(len(rest)) > n && rest[n] != '\r' {
				return nil, p.fail(p.i+int(n), "chunk data not followed by CRLF")
			}
			return nil, ErrIncomplete
		}
		data := p.b[p.i : p.i+int(n)]
		if p.b[p.i+int(n)] != '\r' || p.b[p.i+int(n)+1] != '\n' {
			return nil, p.fail(p.i+int(n), "chunk data not followed by CRLF")
		}
		body = append(body, data...)
		p.i += int(n) + 2
	}
}

// validChunkExt reports whether ext (what follows the first ';') is
// name[=value] *(";" name[=value]), names tokens, values tokens or quoted
// strings.
func validChunkExt(ext []byte) bool {
	for _, e := range bytes.Split(ext, []byte(";")) {
		name, value, hasValue := bytes.Cut(e, []byte("="))
		if !isToken(name) {
			return false
		}
		if !hasValue {
			continue
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			for _, c := range value[1 : len(value)-1] {
				if c < ' ' && c != '\t' || c == 0x7f {
					return false
				}
			}
			continue
		}
		if !isToken(value) {
			return false
		}
	}
	return true
}

// isAbsoluteURI reports whether b begins with a URI scheme and a colon
// (RFC 3986 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
func isAbsoluteURI(b []byte) bool {
	i := bytes.IndexByte(b, ':')
	if i <= 0 || !(b[0] >= 'a' && b[0] <= 'z' || b[0] >= 'A' && b[0] <= 'Z') {
		return false
	}
	for _, c := range b[1:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isToken reports whether b is a token of RFC 9110 5.6.2.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tchar[c] {
			return false
		}
	}
	return true
}

var tchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
