package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"

	"github.com/switchyard/switchyard/proxy/head"
)

// errHeadTooLarge: the response head does not fit in the read buffer.
var errHeadTooLarge = errors.New("upstream: response head larger than the read buffer")

// errStatusLine: the first line of a response is not a status line.
var errStatusLine = errors.New("upstream: malformed status line")

// errHeadFraming: the parser ended the head elsewhere than at its blank
// line, so the two disagree on where the body starts.
var errHeadFraming = errors.New("upstream: response head parsed to a different end")

// readHead reads one response head from br into rh.
//
// It first waits until br holds the whole head — any blank lines, the
// status line, the header lines, the blank line that ends it — and only
// then has fasthttp parse it, which then never waits: fasthttp ends a head
// at a blank line that ends in a bare LF only when it has seen a CRLFCRLF
// somewhere, and would otherwise wait for one until the response-header
// timeout. A head whose lines end in bare LFs (RFC 9112 §2.2 allows a
// recipient to accept them) is parsed from a copy with CRLF line ends.
// The parser must consume exactly the head; a disagreement on where the
// body starts is malformed.
//
// It reports when the head frames its message ambiguously (see
// ambiguousFraming): the message is read as fasthttp framed it, and its
// connection must not be reused.
func readHead(br *bufio.Reader, rh *head.Response) (ambiguous bool, err error) {
	head, err := awaitHead(br)
	if err != nil {
		return false, err
	}
	if !bytes.HasSuffix(head, crlfcrlf) {
		if err := readBareLF(br, rh, head); err != nil {
			return false, err
		}
		return ambiguousFraming(rh, head), nil
	}
	before := br.Buffered()
	if err := rh.Read(br); err != nil {
		return false, err
	}
	if before-br.Buffered() != len(head) {
		return false, errHeadFraming
	}
	// head still holds the bytes: br has not read since.
	return ambiguousFraming(rh, head), nil
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// awaitHead waits until br holds a whole response head and returns it,
// still buffered. Its errors are those of fasthttp's ResponseHeader.Read,
// which readErr classifies: io.EOF when the connection ended before any
// byte of a head (or after blank lines only), the read's error otherwise,
// io.ErrUnexpectedEOF for an end within the head.
func awaitHead(br *bufio.Reader) ([]byte, error) {
	for n := 1; ; {
		b, err := br.Peek(n)
		if len(b) < n {
			switch {
			case isTimeout(err):
				return nil, err
			case n == 1 || onlyCRLF(b):
				return nil, io.EOF
			case err == io.EOF:
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		b, _ = br.Peek(br.Buffered())
		end, ok := headEnd(b)
		switch {
		case end > 0:
			return b[:end], nil
		case !ok:
			return nil, errStatusLine
		case len(b) >= br.Size():
			return nil, errHeadTooLarge
		}
		n = len(b) + 1
	}
}

// headEnd returns the length of the head at the start of b, or 0 when b
// does not hold all of it yet. ok is false when b starts with a complete
// line that is not a status line. Blank lines before the status line are
// part of the head (fasthttp skips them). A line ends at an LF, with or
// without a CR before it.
func headEnd(b []byte) (end int, ok bool) {
	start := 0
	for {
		if bytes.HasPrefix(b[start:], crlf) {
			start += 2
		} else if start < len(b) && b[start] == '\n' {
			start++
		} else {
			break
		}
	}
	rest := b[start:]
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 {
		return 0, true
	}
	if !isStatusLine(rest[:nl]) {
		return 0, false
	}
	// The head ends at the first blank line: an LF followed by CRLF or by
	// another LF. The second search looks only before the first.
	i := bytes.Index(rest, lfcrlf)
	before := rest
	if i >= 0 {
		before = rest[:i+1]
	}
	if k := bytes.Index(before, lflf); k >= 0 {
		return start + k + 2, true
	}
	if i >= 0 {
		return start + i + 3, true
	}
	return 0, true
}

var (
	lfcrlf = []byte("\n\r\n")
	lflf   = []byte("\n\n")
)

// isStatusLine reports whether line (up to its LF) is a status line as
// fasthttp parses one: "HTTP/d.d", spaces, a three-digit code, then
// nothing or a space and a reason.
func isStatusLine(line []byte) bool {
	line = bytes.TrimSuffix(line, crlf[:1]) // the CR of a CRLF
	sp := bytes.IndexByte(line, ' ')
	if sp != 8 || !bytes.HasPrefix(line, httpSlash) || !isDigit(line[5]) || line[6] != '.' || !isDigit(line[7]) {
		return false
	}
	code := bytes.TrimLeft(line[sp:], " ")
	if len(code) < 3 || !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) {
		return false
	}
	return len(code) == 3 || code[3] == ' '
}

var httpSlash = []byte("HTTP/")

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func onlyCRLF(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// readBareLF parses head, which does not end in CRLFCRLF, from a copy
// whose every bare LF is a CRLF, then drops head from br. It allocates:
// such heads are rare.
func readBareLF(br *bufio.Reader, rh *head.Response, head []byte) error {
	norm := make([]byte, 0, len(head)+bytes.Count(head, lflf[:1]))
	for i, c := range head {
		if c == '\n' && (i == 0 || head[i-1] != '\r') {
			norm = append(norm, '\r')
		}
		norm = append(norm, c)
	}
	r := bufio.NewReaderSize(bytes.NewReader(norm), max(len(norm), 16))
	if err := rh.Read(r); err != nil {
		return err
	}
	if r.Buffered() != 0 {
		return errHeadFraming
	}
	_, err := br.Discard(len(head))
	return err
}

// ambiguousFraming reports whether a parsed head frames its body in a way
// another reader could take differently, so that the connection must be
// closed after the message (RFC 9112 §6.3): a chunked message that also
// has a Content-Length (read as chunked: Transfer-Encoding wins), or an
// HTTP/1.0 message with a Transfer-Encoding (which fasthttp ignores: the
// message is read by its Content-Length, or until close). They are looked
// for in the raw head: fasthttp keeps neither the Content-Length of a
// chunked message nor the Transfer-Encoding of an HTTP/1.0 one.
func ambiguousFraming(rh *head.Response, head []byte) bool {
	switch {
	case rh.ContentLength() == -1:
		return hasField(head, contentLength)
	case !rh.IsHTTP11():
		return hasField(head, transferEncoding)
	}
	return false
}

var (
	contentLength    = []byte("content-length")
	transferEncoding = []byte("transfer-encoding")
)

// hasField reports whether the head has a header line named name (lower
// case), spaces before the colon allowed as fasthttp allows them.
func hasField(head, name []byte) bool {
	for {
		nl := bytes.IndexByte(head, '\n')
		if nl < 0 {
			return false
		}
		head = head[nl+1:]
		colon := bytes.IndexByte(head, ':')
		if colon < 0 {
			return false
		}
		if bytes.IndexByte(head[:colon], '\n') >= 0 {
			continue
		}
		if bytes.EqualFold(bytes.TrimRight(head[:colon], " \t"), name) {
			return true
		}
	}
}
