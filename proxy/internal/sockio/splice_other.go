//go:build !linux

package sockio

import "syscall"

// Without splice(2), no pipe is made: the proxy copies every body through
// memory (the clients' connections take a failed Get for that).

func splice(in, out uintptr, n int) (int, error) { return 0, syscall.ENOSYS }

func newPipe(int) (*Pipe, error) { return nil, ErrNoSplice }
