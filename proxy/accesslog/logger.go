package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultBuffer       = 4096
	defaultCloseTimeout = 5 * time.Second
	// Lines larger than this are left to the garbage collector rather than
	// pooled, so one huge request does not pin memory.
	maxPooledLine = 64 << 10
	// A batch buffer larger than this (after a burst) is not kept.
	maxKeptBatch = 1 << 20
)

var (
	// ErrClosed is returned by Reopen after Close.
	ErrClosed = errors.New("accesslog: logger closed")
	// ErrCloseTimeout is returned by Close when the writer did not finish
	// within Config.CloseTimeout.
	ErrCloseTimeout = errors.New("accesslog: close timed out waiting for the writer")
)

// line is the buffer a JSON line is encoded into before it is copied into
// the batch.
type line struct{ b []byte }

var linePool = sync.Pool{New: func() any { return &line{b: make([]byte, 0, 512)} }}

func releaseLine(ln *line) {
	if cap(ln.b) <= maxPooledLine {
		linePool.Put(ln)
	}
}

// cacheLinePad keeps counters written on every request off the cache line
// of the read-mostly fields.
type cacheLinePad [64]byte

// Logger writes access log lines. Log is safe for concurrent use and never
// blocks; a single writer goroutine owns the output.
//
// Lines are appended to a batch under a mutex, and the writer goroutine
// writes the whole batch with one call: flushAfter after the first line of
// a batch, or at once when the batch is full (see fullAt). Log wakes the
// writer only for those two events — not for every line, which would cost
// a goroutine switch per request.
type Logger struct {
	// Read-mostly, set in the constructor.
	stopped      atomic.Bool // set by Close; always set for an Off logger
	every        uint64      // sample one in every; <= 1 logs all
	max          int         // lines the batch may hold
	fullLines    int         // a batch of this many lines is full
	flushAfter   time.Duration
	kick         chan struct{}
	reopens      chan chan error
	quit         chan struct{} // closed by Close
	done         chan struct{} // closed when the writer goroutine exits
	closeTimeout time.Duration
	path         string // reopened by Reopen; empty when the output is not a file we opened

	_       cacheLinePad
	seq     atomic.Uint64 // sampling counter
	dropped atomic.Uint64
	_       cacheLinePad
	written atomic.Uint64

	_     cacheLinePad
	mu    sync.Mutex
	batch []byte // lines waiting for the writer
	n     int    // lines in batch
	full  bool   // the writer was woken for a full batch

	// Owned by the writer goroutine.
	out   io.Writer
	spare []byte // the previous batch's buffer, for the next
	err   error  // first output error; read by Close once done is closed

	fileMu sync.Mutex // guards file: swapped by the writer, closed by Close on timeout
	file   *os.File   // nil when the output is not ours to close
}

// New returns a Logger for cfg: it appends to cfg.Path (created with mode
// 0644) or writes to stdout when Path is empty or "-". With cfg.Off the
// Logger does nothing and no file is opened.
func New(cfg Config) (*Logger, error) {
	if cfg.Off {
		return newOff(), nil
	}
	if cfg.Path == "" || cfg.Path == "-" {
		return NewWriter(cfg, os.Stdout), nil
	}
	f, err := openFile(cfg.Path)
	if err != nil {
		return nil, err
	}
	l := newLogger(cfg, f)
	l.path = cfg.Path
	l.file = f
	go l.run()
	return l, nil
}

// NewWriter returns a Logger for cfg that writes to w, ignoring cfg.Path.
// The Logger never closes w and Reopen does nothing. w is written from one
// goroutine at a time.
func NewWriter(cfg Config, w io.Writer) *Logger {
	if cfg.Off {
		return newOff()
	}
	l := newLogger(cfg, w)
	go l.run()
	return l
}

func newOff() *Logger {
	l := &Logger{}
	l.stopped.Store(true)
	return l
}

func newLogger(cfg Config, w io.Writer) *Logger {
	max := orDefault(cfg.Buffer, defaultBuffer)
	l := &Logger{
		max:          max,
		fullLines:    (max + 1) / 2,
		flushAfter:   flushAfter,
		kick:         make(chan struct{}, 1),
		reopens:      make(chan chan error),
		quit:         make(chan struct{}),
		done:         make(chan struct{}),
		closeTimeout: orDefault(cfg.CloseTimeout, defaultCloseTimeout),
		out:          w,
	}
	if cfg.SampleEvery > 1 {
		l.every = uint64(cfg.SampleEvery)
	}
	return l
}

// orDefault returns v, or def when v is not positive.
func orDefault[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	return f, nil
}

// Log queues e as one JSON line. It encodes e on the calling goroutine,
// never blocks, and does not allocate in steady state; e is not retained.
// When Config.Buffer lines are waiting the line is dropped and counted (see
// Dropped).
// Log on an Off or closed Logger does nothing; a Log that races with Close
// may be lost without being counted.
//
// With Config.SampleEvery = N > 1, the 1st, (N+1)th, (2N+1)th... request
// are logged; responses with status >= 500 or 499 are always logged and do
// not advance the sampling counter.
//
// Each line is one JSON object, with fields in this order:
//
//	@timestamp             string  Entry.Time in UTC, RFC 3339 with milliseconds: "2024-05-01T12:34:56.789Z"
//	request_id             string
//	client_ip              string
//	method                 string
//	host                   string
//	path                   string  request URI as received
//	handling_cluster       string  "" when unknown
//	handling_instance      string  "" when not proxied
//	availability_zones     array   of strings: [] when not proxied, else ["zone-a"]
//	status_code            number
//	status_reason          string  omitted when empty
//	response_time          number  milliseconds with three decimals (microsecond precision): 12.345
//	backend_response_time  number  as response_time; omitted when no instance answered
//	bytes_in               number  request body bytes
//	bytes_out              number  response body bytes
//	protocol               string  "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/3"; omitted when not set
//	tls_version            string  "TLSv1.2", "TLSv1.3"; omitted on a plain connection
//	tls_resumed            bool    the TLS session was resumed; omitted on a plain connection
//
// Strings are escaped as JSON requires; control bytes are written as
// \u00XX and bytes that are not valid UTF-8 as \ufffd, so a line never
// contains a raw newline and is always valid UTF-8.
func (l *Logger) Log(e *Entry) {
	if l == nil || l.stopped.Load() {
		return
	}
	if l.every > 1 && e.StatusCode < 500 && e.StatusCode != 499 {
		if (l.seq.Add(1)-1)%l.every != 0 {
			return
		}
	}
	ln := linePool.Get().(*line)
	ln.b = appendEntry(ln.b[:0], e)
	l.mu.Lock()
	if l.n >= l.max {
		l.mu.Unlock()
		releaseLine(ln)
		l.dropped.Add(1)
		return
	}
	wake := l.n == 0 // the writer starts the batch's flushAfter
	l.batch = append(l.batch, ln.b...)
	l.n++
	if !l.full && l.fullAt(l.n, len(l.batch)) {
		l.full, wake = true, true
	}
	l.mu.Unlock()
	releaseLine(ln)
	if wake {
		select {
		case l.kick <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// Dropped returns how many lines were lost: Config.Buffer lines were
// waiting, or the output returned an error for the batch of the line.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Written returns how many lines were handed to the output.
func (l *Logger) Written() uint64 {
	if l == nil {
		return 0
	}
	return l.written.Load()
}

// Reopen closes and reopens Config.Path, for log rotation: lines queued
// before the call go to the old file, later ones to the new. If the path
// cannot be opened the Logger keeps writing to the old file and Reopen
// returns the error. It does nothing for stdout or a NewWriter Logger, and
// returns ErrClosed after Close. Reopen waits for the writer goroutine, so
// it blocks while the output is stuck.
func (l *Logger) Reopen() error {
	if l == nil || l.path == "" {
		return nil
	}
	if l.stopped.Load() {
		return ErrClosed
	}
	req := make(chan error, 1)
	select {
	case l.reopens <- req:
		return <-req
	case <-l.done:
		return ErrClosed
	}
}

// Close writes out every queued line, stops the writer goroutine and
// closes the file (never stdout or a NewWriter writer). It returns the
// first error the output reported, if any. If the output is stuck, Close
// gives up after Config.CloseTimeout, closes the file so the writer can
// fail and exit, and returns ErrCloseTimeout; a writer stuck on a
// NewWriter writer exits when that write returns. Further calls return nil.
func (l *Logger) Close() error {
	if l == nil || !l.stopped.CompareAndSwap(false, true) {
		return nil
	}
	close(l.quit)
	t := time.NewTimer(l.closeTimeout)
	defer t.Stop()
	select {
	case <-l.done:
		return l.err
	case <-t.C:
	}
	l.fileMu.Lock()
	f := l.file
	l.file = nil
	l.fileMu.Unlock()
	err := fmt.Errorf("%w after %v", ErrCloseTimeout, l.closeTimeout)
	if f != nil {
		if cerr := f.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("accesslog: %w", cerr))
		}
	}
	return err
}

// flushAfter is how long the first line of a batch may wait for the
// writer; flushBytes is how large a batch goes at once. Under load lines go
// out in batches of flushBytes, one write each; at rest a line is written
// within flushAfter.
//
// Batches are large because each write is a system call the Go runtime
// enters for real (a file write may block), and entering one while the
// process was idle wakes the runtime's monitor thread, which then polls
// every 20 µs for a while, taking the CPU from the proxy each time. With
// 32 KiB batches that cost the proxy about a tenth of its CPU at 20 000
// requests a second of 4 KiB responses; at 256 KiB, a few per cent.
const (
	flushAfter = 50 * time.Millisecond
	flushBytes = 256 << 10
)

// fullAt reports whether a batch of n lines and size bytes is full: it has
// flushBytes, or half the lines the Logger may hold, so that the writer
// takes it before a small Config.Buffer drops lines.
func (l *Logger) fullAt(n, size int) bool {
	return size >= flushBytes || n >= l.fullLines
}

// run is the writer goroutine.
func (l *Logger) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-l.kick:
			l.mu.Lock()
			n, size := l.n, len(l.batch)
			l.mu.Unlock()
			switch {
			case l.fullAt(n, size):
				l.writeBatch()
			case n > 0 && !armed:
				timer.Reset(l.flushAfter)
				armed = true
			}
		case <-timer.C:
			armed = false
			l.writeBatch()
		case req := <-l.reopens:
			req <- l.reopen()
		case <-l.quit:
			l.writeBatch()
			if err := l.swapFile(nil); err != nil && l.err == nil {
				l.err = err
			}
			return
		}
	}
}

// writeBatch takes the batch, leaving the spare buffer in its place, and
// writes it with one call.
func (l *Logger) writeBatch() {
	l.mu.Lock()
	b, n := l.batch, l.n
	l.batch, l.n, l.full = l.spare[:0], 0, false
	l.mu.Unlock()
	if n > 0 {
		if _, err := l.out.Write(b); err != nil {
			if l.err == nil {
				l.err = fmt.Errorf("accesslog: %w", err)
			}
			l.dropped.Add(uint64(n))
		} else {
			l.written.Add(uint64(n))
		}
	}
	if cap(b) > maxKeptBatch {
		b = nil
	}
	l.spare = b[:0]
}

func (l *Logger) reopen() error {
	l.writeBatch()
	f, err := openFile(l.path)
	if err != nil {
		return err
	}
	l.out = f
	return l.swapFile(f)
}

// swapFile makes f the file closed by Close and closes the previous one.
func (l *Logger) swapFile(f *os.File) error {
	l.fileMu.Lock()
	old := l.file
	l.file = f
	l.fileMu.Unlock()
	if old == nil {
		return nil
	}
	if err := old.Close(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	return nil
}
