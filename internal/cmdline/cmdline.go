// Package cmdline is the conventions the project's commands (switchyard,
// yardctl, yardload) share: bad usage is one line on stderr and exit 2, a
// runtime failure one line and exit 1; flag errors name the flag; SIGINT
// or SIGTERM ends the run, and a second one kills the process.
package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // runtime failure, e.g. a listener cannot bind
	ExitUsage   = 2 // bad usage or bad input
)

// UsageError is bad usage or bad input: exit 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a usage error with a message formatted as fmt.Errorf
// does.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// Usage marks err as a usage error.
func Usage(err error) error { return &UsageError{err} }

// OneLine is err's message on one line: runs of white space, newlines
// included, become one space.
func OneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// ExitCode returns the exit code for err, what a command returned, and
// writes err on stderr as one line, "prefix: message": 0 for nil and for
// flag.ErrHelp (the command printed its help), writing nothing; 2 for a
// usage error; 1 for any other error.
func ExitCode(stderr io.Writer, prefix string, err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", prefix, OneLine(err))
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, OneLine(err))
	return ExitFailure
}

// SignalContext returns a context cancelled by SIGINT or SIGTERM. After the
// first signal the handler is removed, so a second one kills the process.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}
