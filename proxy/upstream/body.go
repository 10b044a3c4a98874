package upstream

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/switchyard/switchyard/proxy/internal/sockio"
)

// ErrMalformedChunk is returned by Body.Read for broken chunked framing.
var ErrMalformedChunk = errors.New("upstream: malformed chunked body")

type bodyMode uint8

const (
	modeLength  bodyMode = iota // Content-Length
	modeChunked                 // Transfer-Encoding: chunked
	modeClose                   // until the instance closes the connection
)

var bodyPool = sync.Pool{New: func() any { return new(Body) }}

// Body streams a response body from an instance. When the body has been
// read to its end the connection goes back to the pool at once; Close
// before the end closes the connection.
type Body struct {
	c         *conn
	idle      time.Duration
	mode      bodyMode
	keepAlive bool
	left      int64 // modeLength: bytes left; modeChunked: bytes left in chunk
	done      bool
	err       error
	n         int64
}

// Read reads the decoded body. Each call extends the read deadline by the
// transport's IdleTimeout.
func (b *Body) Read(p []byte) (int, error) {
	most, err := b.begin(len(p))
	if most == 0 {
		return 0, err
	}
	// The deadline matters only to a read that may wait: not when the
	// reader holds data and the mode reads no more than that.
	if b.mode == modeChunked || b.c.br.Buffered() == 0 {
		now := monoNow()
		b.c.wantRead(now+int64(b.idle), now)
	}
	if b.mode == modeChunked {
		return b.record(b.readChunked(p))
	}
	return b.record(b.c.br.Read(p[:most]))
}

// ReadPipe moves up to most bytes of the body into the empty pipe p, as
// Read would read them (sockio.PipeReader): those the connection has
// already read into memory are copied in, the rest spliced from the socket.
// A chunked body, or one not read from a socket, gets sockio.ErrNoSplice.
func (b *Body) ReadPipe(p *sockio.Pipe, most int) (int, error) {
	if !b.done && b.err == nil && (b.mode == modeChunked || b.c.sr == nil) {
		return 0, sockio.ErrNoSplice
	}
	most, err := b.begin(most)
	if most == 0 {
		return 0, err
	}
	br := b.c.br
	if k := br.Buffered(); k > 0 {
		buf, _ := br.Peek(min(k, most))
		n, err := p.Fill(buf)
		_, _ = br.Discard(n)
		return b.record(n, err)
	}
	now := monoNow()
	b.c.wantRead(now+int64(b.idle), now)
	return b.record(b.c.sr.ReadPipe(p, most))
}

// begin starts a read of up to most bytes: it returns how many the read may
// take (most, or less when a Content-Length has less left), or 0 and what
// the read returns at once (the end, an earlier error, or nothing asked).
func (b *Body) begin(most int) (int, error) {
	switch {
	case b.done:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.mode == modeLength && b.left == 0:
		b.finish()
		return 0, io.EOF
	case b.mode == modeLength && int64(most) > b.left:
		return int(b.left), nil
	}
	return max(most, 0), nil
}

// record ends a read that got n bytes of the body and err, and returns
// what the read returns. A Content-Length body ends with its last byte,
// and one that ends sooner fails with io.ErrUnexpectedEOF; one read
// until close ends at the end of the stream (a chunked one ends in
// readChunked). Either way the connection goes back to the pool at the
// end (finish). An error other than the end stays the body's.
func (b *Body) record(n int, err error) (int, error) {
	switch {
	case b.mode == modeLength:
		b.left -= int64(n)
		if b.left == 0 {
			b.finish()
			err = io.EOF
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	case b.mode == modeClose && err == io.EOF:
		b.finish()
	}
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *Body) readChunked(p []byte) (int, error) {
	br := b.c.br
	if b.left == 0 {
		size, err := readChunkSize(br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := skipTrailer(br); err != nil {
				return 0, err
			}
			b.finish()
			return 0, io.EOF
		}
		b.left = size
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, err
	}
	if b.left == 0 {
		if err := expectCRLF(br); err != nil {
			return n, err
		}
	}
	return n, nil
}

// readChunkSize reads "<hex>[;ext]\r\n".
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		if err == bufio.ErrBufferFull {
			return 0, ErrMalformedChunk
		}
		return 0, err
	}
	var size int64
	digits := 0
	for _, ch := range line {
		var v byte
		switch {
		case ch >= '0' && ch <= '9':
			v = ch - '0'
		case ch >= 'a' && ch <= 'f':
			v = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			v = ch - 'A' + 10
		default:
			if digits == 0 || (ch != ';' && ch != '\r' && ch != '\n' && ch != ' ' && ch != '\t') {
				return 0, ErrMalformedChunk
			}
			return size, nil
		}
		digits++
		if digits > 15 {
			return 0, ErrMalformedChunk
		}
		size = size<<4 | int64(v)
	}
	return 0, ErrMalformedChunk
}

// skipTrailer discards trailer fields up to the empty line that ends the
// message.
func skipTrailer(br *bufio.Reader) error {
	for i := 0; i < 64; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return ErrMalformedChunk
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
	return ErrMalformedChunk
}

func expectCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if c != '\n' {
		return ErrMalformedChunk
	}
	return nil
}

// finish hands the connection back once the body is fully read.
func (b *Body) finish() {
	b.done = true
	c := b.c
	b.c = nil
	if c == nil {
		return
	}
	c.release(b.keepAlive)
}

// Complete reports whether the body was read to its end.
func (b *Body) Complete() bool { return b.done }

// Err is the error that stopped reading the body, if any.
func (b *Body) Err() error { return b.err }

// Close releases the body. A body not read to its end closes its
// connection. b must not be used after Close.
func (b *Body) Close() error {
	if c := b.c; c != nil {
		b.c = nil
		if c.writing {
			c.stopWriting()
		}
		c.req = nil
		c.p.closeConn(c)
	}
	*b = Body{}
	bodyPool.Put(b)
	return nil
}
