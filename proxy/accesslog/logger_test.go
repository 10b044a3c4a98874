package accesslog

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readLines returns the lines of path, each with its newline.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(b)
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(lines, b)
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

func entryWithID(id string, status int) *Entry {
	e := baseEntry()
	e.RequestID = []byte(id)
	e.StatusCode = status
	return &e
}

func TestLogWritesEntries(t *testing.T) {
	var out bytes.Buffer
	l := NewWriter(Config{}, &out)
	e := baseEntry()
	l.Log(&e)
	e.RequestID = []byte("req-2") // the caller may reuse the entry at once
	l.Log(&e)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := splitLines(out.Bytes())
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2:\n%s", len(lines), out.Bytes())
	}
	for i, want := range []string{"req-1", "req-2"} {
		if got := decodeLine(t, lines[i])["request_id"]; got != want {
			t.Errorf("line %d request_id = %v; want %s", i, got, want)
		}
	}
	if got := l.Written(); got != 2 {
		t.Errorf("Written() = %d; want 2", got)
	}
	if got := l.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d; want 0", got)
	}
}

func TestConcurrentLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(Config{Path: path, Buffer: 256})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perGoroutine = 32, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			e := baseEntry()
			for i := range perGoroutine {
				e.RequestID = strconv.AppendInt(e.RequestID[:0], int64(g*perGoroutine+i), 10)
				l.Log(&e)
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := readLines(t, path)
	if got, want := uint64(len(lines)), l.Written(); got != want {
		t.Errorf("file has %d lines; Written() = %d", got, want)
	}
	if got := l.Written() + l.Dropped(); got != goroutines*perGoroutine {
		t.Errorf("Written()+Dropped() = %d; want %d", got, goroutines*perGoroutine)
	}
	seen := make(map[string]bool, len(lines))
	for _, ln := range lines {
		id, _ := decodeLine(t, ln)["request_id"].(string)
		if seen[id] {
			t.Fatalf("request_id %s logged twice", id)
		}
		seen[id] = true
	}
}

// notifyWriter reports each Write on a channel.
type notifyWriter struct{ writes chan []byte }

func (w notifyWriter) Write(p []byte) (int, error) {
	w.writes <- bytes.Clone(p)
	return len(p), nil
}

func TestLogFlushesPromptly(t *testing.T) {
	w := notifyWriter{writes: make(chan []byte, 16)}
	l := NewWriter(Config{}, w)
	defer l.Close()
	l.Log(entryWithID("prompt", 200))
	select {
	case b := <-w.writes:
		if got := decodeLine(t, b)["request_id"]; got != "prompt" {
			t.Errorf("request_id = %v; want prompt", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("line not written within 5s without Close")
	}
}

// loggerFlushingAfter returns a Logger writing to w whose batches wait d
// for the timer, so a test can tell a full batch from a timed one.
func loggerFlushingAfter(t *testing.T, cfg Config, w io.Writer, d time.Duration) *Logger {
	t.Helper()
	l := newLogger(cfg, w)
	l.flushAfter = d
	go l.run()
	t.Cleanup(func() { l.Close() })
	return l
}

func nextWrite(t *testing.T, w notifyWriter) []byte {
	t.Helper()
	select {
	case b := <-w.writes:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no write within 10s")
		return nil
	}
}

func TestBatchFullAtHalfTheBuffer(t *testing.T) {
	w := notifyWriter{writes: make(chan []byte, 16)}
	l := loggerFlushingAfter(t, Config{Buffer: 8}, w, time.Hour)
	for i := range 4 {
		l.Log(entryWithID(strconv.Itoa(i), 200))
	}
	// Three lines are not a full batch, so the first write holds all four.
	b := nextWrite(t, w)
	if got := bytes.Count(b, []byte("\n")); got != 4 {
		t.Errorf("first write has %d lines; want 4", got)
	}
	if got := l.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d; want 0", got)
	}
}

func TestBatchFullAtFlushBytes(t *testing.T) {
	w := notifyWriter{writes: make(chan []byte, 16)}
	l := loggerFlushingAfter(t, Config{Buffer: 1 << 20}, w, time.Hour)
	e := entryWithID("big", 200)
	e.Path = bytes.Repeat([]byte("p"), 1000)
	size, n := 0, 0
	for size < flushBytes {
		ln := appendEntry(nil, e)
		size += len(ln)
		n++
		l.Log(e)
	}
	b := nextWrite(t, w)
	if len(b) != size || bytes.Count(b, []byte("\n")) != n {
		t.Errorf("first write: %d bytes, %d lines; want %d bytes, %d lines",
			len(b), bytes.Count(b, []byte("\n")), size, n)
	}
}

// blockingWriter blocks every Write until release is closed, then fails.
type blockingWriter struct {
	entered chan struct{} // receives once per Write call
	release chan struct{}
}

func (w blockingWriter) Write([]byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return 0, io.ErrClosedPipe
}

func TestDropWhenWriterBlocked(t *testing.T) {
	w := blockingWriter{entered: make(chan struct{}, 16), release: make(chan struct{})}
	const buffer = 4
	l := NewWriter(Config{Buffer: buffer, CloseTimeout: 50 * time.Millisecond}, w)

	l.Log(entryWithID("first", 200))
	<-w.entered // the writer is now stuck flushing the first line

	const n = 1000
	logged := make(chan struct{})
	go func() {
		for i := range n {
			l.Log(entryWithID(strconv.Itoa(i), 200))
		}
		close(logged)
	}()
	select {
	case <-logged:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a stuck writer")
	}
	if got := l.Dropped(); got != n-buffer {
		t.Errorf("Dropped() = %d; want %d", got, n-buffer)
	}

	start := time.Now()
	if err := l.Close(); !errors.Is(err, ErrCloseTimeout) {
		t.Errorf("Close() = %v; want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 50ms CloseTimeout", d)
	}

	// Unblock the writer: it fails, writes out the queue and exits.
	close(w.release)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer goroutine did not exit after its output failed")
	}
	if got := l.Written() + l.Dropped(); got != n+1 {
		t.Errorf("Written()+Dropped() = %d; want %d", got, n+1)
	}
}

func TestSampling(t *testing.T) {
	var out bytes.Buffer
	l := NewWriter(Config{SampleEvery: 3}, &out)
	var want []string
	for i := range 10 {
		id := "ok-" + strconv.Itoa(i)
		l.Log(entryWithID(id, 200))
		if i%3 == 0 {
			want = append(want, id)
		}
		if i == 4 {
			for _, status := range []int{499, 500, 503} {
				id := "err-" + strconv.Itoa(status)
				l.Log(entryWithID(id, status))
				want = append(want, id)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ln := range splitLines(out.Bytes()) {
		got = append(got, decodeLine(t, ln)["request_id"].(string))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("logged %v; want %v", got, want)
	}
}

func TestOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := New(Config{Off: true, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entryWithID("x", 500))
	if err := l.Reopen(); err != nil {
		t.Errorf("Reopen() = %v; want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close() = %v; want nil", err)
	}
	if w, d := l.Written(), l.Dropped(); w != 0 || d != 0 {
		t.Errorf("Written(), Dropped() = %d, %d; want 0, 0", w, d)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Off logger touched %s: Stat = %v", path, err)
	}
	if l := NewWriter(Config{Off: true}, nil); l.Written() != 0 {
		t.Error("NewWriter with Off wrote")
	}
}

func TestNewBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "access.log")
	_, err := New(Config{Path: path})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("New(%s) error = %v; want fs.ErrNotExist", path, err)
	}
	if !strings.HasPrefix(err.Error(), "accesslog: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should start with accesslog: and name the path", err)
	}
}

func TestNewAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entryWithID("new", 200))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 || string(lines[0]) != "old\n" {
		t.Fatalf("file = %q; want the old line followed by one new line", lines)
	}
	decodeLine(t, lines[1])
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	rotated := path + ".1"
	l, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(entryWithID("before", 200))
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	l.Log(entryWithID("after", 200))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for file, want := range map[string]string{rotated: "before", path: "after"} {
		lines := readLines(t, file)
		if len(lines) != 1 {
			t.Errorf("%s has %d lines; want 1", file, len(lines))
			continue
		}
		if got := decodeLine(t, lines[0])["request_id"]; got != want {
			t.Errorf("%s has request_id %v; want %s", file, got, want)
		}
	}
	if err := l.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close = %v; want ErrClosed", err)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "access.log")
	l, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // keeps the old file readable once unlinked
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Reopen with its directory gone = %v; want fs.ErrNotExist", err)
	}
	l.Log(entryWithID("still", 200))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if lines := splitLines(b); len(lines) != 1 || decodeLine(t, lines[0])["request_id"] != "still" {
		t.Errorf("old file = %q; want the line logged after the failed Reopen", b)
	}
}

func TestReopenNotAFile(t *testing.T) {
	l := NewWriter(Config{Path: "ignored.log"}, io.Discard)
	defer l.Close()
	if err := l.Reopen(); err != nil {
		t.Errorf("Reopen on a NewWriter logger = %v; want nil", err)
	}
}

func TestLogAfterClose(t *testing.T) {
	var out bytes.Buffer
	l := NewWriter(Config{}, &out)
	l.Log(entryWithID("a", 200))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := out.Len()
	l.Log(entryWithID("b", 500))
	if err := l.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if out.Len() != n || l.Written() != 1 || l.Dropped() != 0 {
		t.Errorf("Log after Close wrote: Written() = %d, Dropped() = %d, output %q", l.Written(), l.Dropped(), out.Bytes())
	}

	var nilLogger *Logger
	nilLogger.Log(entryWithID("c", 200)) // must not panic
	if err := nilLogger.Close(); err != nil {
		t.Errorf("nil Close() = %v; want nil", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorReported(t *testing.T) {
	l := NewWriter(Config{}, failWriter{})
	l.Log(entryWithID("a", 200))
	err := l.Close()
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close() = %v; want the write error", err)
	}
}

func BenchmarkLog(b *testing.B) {
	l := NewWriter(Config{}, io.Discard)
	e := baseEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(&e)
	}
	b.StopTimer()
	l.Close()
	b.ReportMetric(float64(l.Dropped())/float64(b.N), "drops/op")
}

func BenchmarkLogParallel(b *testing.B) {
	l := NewWriter(Config{}, io.Discard)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := baseEntry()
		for pb.Next() {
			l.Log(&e)
		}
	})
	b.StopTimer()
	l.Close()
	b.ReportMetric(float64(l.Dropped())/float64(b.N), "drops/op")
}
