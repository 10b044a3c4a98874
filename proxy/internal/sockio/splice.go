package sockio

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
)

// A Pipe is a kernel pipe through which splice(2) moves bytes from one
// socket to another without copying them through user memory: the pages
// a socket received are handed to the pipe and from it to the other
// socket's send queue by reference. A proxy relaying a large body that way
// makes two system calls per pipeful, as a read and a write would, but
// copies nothing, and the client's reads find pages no CPU wrote to since
// they arrived (docs/notes/profiles.md, "Splicing response bodies").
//
// A Pipe is used by one goroutine at a time. It moves bytes in turns:
// fill it (ReadPipe, Fill) while it is empty, then empty it (SpliceTo).
// That way a splice into it that finds no room cannot be mistaken for a
// socket with nothing to read.
type Pipe struct {
	r, w int
	size int // capacity in bytes
	n    int // bytes in the pipe
}

// ErrNoSplice is returned by a PipeReader that cannot move its bytes into
// a pipe (it is not reading a socket, or must decode what it reads); it
// has moved nothing, and the caller reads it with Read instead.
var ErrNoSplice = errors.New("sockio: reader cannot splice")

// A PipeReader is a Reader that can also move what it reads into a pipe.
type PipeReader interface {
	io.Reader
	// ReadPipe moves up to most bytes into the empty pipe p, as Read would
	// read them: waiting under the reader's deadline, and returning
	// io.EOF (possibly with n > 0) at the end. ErrNoSplice: see there.
	ReadPipe(p *Pipe, most int) (n int, err error)
}

// Len is the number of bytes in the pipe.
func (p *Pipe) Len() int { return p.n }

// Size is the pipe's capacity in bytes.
func (p *Pipe) Size() int { return p.size }

// Fill writes b into the pipe (a copy, for bytes already read into
// memory), as much as fits.
func (p *Pipe) Fill(b []byte) (int, error) {
	if room := p.size - p.n; len(b) > room {
		b = b[:room]
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Write(p.w, b)
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			p.n += n
		}
		if err != nil {
			return max(n, 0), os.NewSyscallError("write", err)
		}
		return n, nil
	}
}

// spliceFrom moves up to n bytes from the non-blocking socket fd into the
// pipe, which must be empty. It returns syscall.EAGAIN when the socket has
// nothing to read, and 0 with a nil error at the end of the stream.
func (p *Pipe) spliceFrom(fd uintptr, n int) (int, error) {
	if n > p.size-p.n {
		n = p.size - p.n
	}
	m, err := splice(fd, uintptr(p.w), n)
	p.n += m
	return m, err
}

// SpliceTo moves the pipe's bytes to the non-blocking socket fd until the
// pipe is empty, the socket's send buffer is full (syscall.EAGAIN), or
// another error. It returns how many bytes it moved.
//
// Unlike Write it cannot pass MSG_NOSIGNAL: on a connection the peer has
// reset, the kernel raises SIGPIPE along with the EPIPE. The Go runtime
// ignores SIGPIPE for descriptors other than standard output and error
// unless the program asks for it with signal.Notify, which the proxy
// does not.
func (p *Pipe) SpliceTo(fd uintptr) (int, error) {
	n := 0
	for p.n > 0 {
		m, err := splice(uintptr(p.r), fd, p.n)
		if err != nil {
			return n, err
		}
		if m <= 0 {
			return n, syscall.EIO // a pipe with bytes in it does not return 0
		}
		p.n -= m
		n += m
	}
	return n, nil
}

// ReadPipe moves up to most bytes from the socket into the empty pipe p,
// waiting as Read does. The Reader must hold no bytes of its own (a
// bufio.Reader above it must be empty).
func (r *Reader) ReadPipe(p *Pipe, most int) (int, error) {
	if most <= 0 {
		return 0, nil
	}
	r.pipe, r.most, r.n, r.err = p, most, 0, nil
	if r.spliceFn == nil {
		r.spliceFn = r.spliceStep
	}
	err := r.rc.Read(r.spliceFn)
	for err != nil && r.OnTimeout != nil && errors.Is(err, os.ErrDeadlineExceeded) && r.OnTimeout() {
		err = r.rc.Read(r.spliceFn)
	}
	r.pipe = nil
	return r.result(err)
}

func (r *Reader) spliceStep(fd uintptr) bool {
	n, err := r.pipe.spliceFrom(fd, r.most)
	return r.stepped(n, err, "splice")
}

// PipePool keeps empty pipes of one size for reuse: a pipe costs two
// descriptors and two system calls to make (pipe2, fcntl) and two to
// close.
type PipePool struct {
	size int
	mu   sync.Mutex
	free []*Pipe
}

// maxFreePipes bounds the pipes a PipePool keeps; more are closed when
// put back. An empty pipe holds no memory, but two descriptors, and its
// size counts against the user's fs.pipe-user-pages-soft (16 MiB of the
// default 64 MiB for 16 pipes of 1 MiB).
const maxFreePipes = 16

// NewPipePool returns a pool of pipes of size bytes.
func NewPipePool(size int) *PipePool { return &PipePool{size: size} }

// ErrPipeSize is returned by Get when the kernel does not grant a pipe the
// pool's size: beyond fs.pipe-max-size, or once the user's pipes hold more
// than fs.pipe-user-pages-soft pages, for a process without
// CAP_SYS_RESOURCE. A smaller pipe would splice in smaller turns, which
// costs more than copying (DefaultPipeSize in package clientconn).
var ErrPipeSize = errors.New("sockio: pipe size not granted")

// Get returns an empty pipe.
func (pp *PipePool) Get() (*Pipe, error) {
	pp.mu.Lock()
	if k := len(pp.free); k > 0 {
		p := pp.free[k-1]
		pp.free = pp.free[:k-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	return newPipe(pp.size)
}

// TryPipeSize reports whether the kernel grants this process a pipe of
// size bytes: nil, or ErrPipeSize (or the error making a pipe).
func TryPipeSize(size int) error {
	p, err := NewPipePool(size).Get()
	if err != nil {
		return err
	}
	p.Close()
	return nil
}

// Put gives p back: kept when it is empty and the pool has room, closed
// otherwise (bytes left in a pipe belong to a stream that failed).
func (pp *PipePool) Put(p *Pipe) {
	if p.n == 0 {
		pp.mu.Lock()
		if len(pp.free) < maxFreePipes {
			pp.free = append(pp.free, p)
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
	}
	p.Close()
}

// Close closes both ends of the pipe.
func (p *Pipe) Close() {
	_ = syscall.Close(p.r)
	_ = syscall.Close(p.w)
	p.r, p.w, p.n = -1, -1, 0
}
