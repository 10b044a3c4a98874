//go:build linux || darwin

package accesslog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestCloseStuckFile checks that Close gives up on a file whose writes
// block (a FIFO nobody reads) and closes it, which lets the writer exit.
func TestCloseStuckFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Open the read end so the writer's open succeeds, and never read.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := New(Config{Path: path, CloseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// One line far larger than the pipe buffer: writing it blocks.
	e := baseEntry()
	e.Path = bytes.Repeat([]byte("x"), 4<<20)
	l.Log(&e)

	start := time.Now()
	if err := l.Close(); !errors.Is(err, ErrCloseTimeout) {
		t.Errorf("Close() = %v; want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 50ms CloseTimeout", d)
	}
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer goroutine still stuck after Close closed the file")
	}
	if got := l.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d; want 1", got)
	}
}
