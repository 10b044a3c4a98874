package allocator

import (
	"errors"

	"golang.org/x/sys/unix"
)

// watchExit closes p.done when p, which is not the allocator's child,
// ends: a pidfd becomes readable then.
func watchExit(p *process) error {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return err
	}
	go func() {
		defer close(p.done)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				return // readable: the process ended
			}
		}
	}()
	return nil
}
