package sockio

import (
	"os"
	"syscall"
)

// splice flags.
const (
	spliceMove     = 0x1
	spliceNonblock = 0x2
)

func splice(in, out uintptr, n int) (int, error) {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, in, 0, out, 0, uintptr(n), spliceMove|spliceNonblock)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// newPipe makes a non-blocking pipe of at least size bytes.
func newPipe(size int) (*Pipe, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	p := &Pipe{r: fds[0], w: fds[1]}
	// F_SETPIPE_SZ rounds up to a power of two pages and returns the size.
	sz, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p.w), fSetPipeSz, uintptr(size))
	if e != 0 || int(sz) < size {
		p.Close()
		return nil, ErrPipeSize
	}
	p.size = int(sz)
	return p, nil
}

const fSetPipeSz = 1031 // F_SETPIPE_SZ
