//go:build !linux

package allocator

import (
	"syscall"
	"time"
)

// watchExit closes p.done when p, which is not the allocator's child,
// ends. Without pidfds it polls: the allocator runs instances on Linux,
// and this keeps the package building elsewhere.
func watchExit(p *process) error {
	go func() {
		defer close(p.done)
		for syscall.Kill(p.pid, 0) == nil {
			time.Sleep(500 * time.Millisecond)
		}
	}()
	return nil
}
