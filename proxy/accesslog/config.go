package accesslog

import "time"

// Config configures a Logger. The zero value logs every request to stdout.
type Config struct {
	// Off disables the access log.
	Off bool
	// Path is the file to append to; empty or "-" means stdout.
	Path string
	// SampleEvery logs one request in SampleEvery; 0 or 1 logs every one.
	// Errors (status >= 500) and requests the client abandoned (499) are
	// always logged.
	SampleEvery int
	// Buffer is how many lines may wait for the writer. Default 4096.
	Buffer int
	// CloseTimeout bounds how long Close waits for the writer to flush
	// queued lines when the output is stuck. Default 5s.
	CloseTimeout time.Duration
}
