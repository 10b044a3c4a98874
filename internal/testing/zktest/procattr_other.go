//go:build !linux

package zktest

import (
	"syscall"
	"time"
)

// procAttr: without Pdeathsig, servers are killed by the test's cleanup.
func procAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot look at the threads: it gives SIGSTOP a moment.
func waitStopped(int) { time.Sleep(50 * time.Millisecond) }
