package upstream

import (
	"errors"
	"fmt"
)

// Kind classifies a failed exchange with an instance.
type Kind uint8

const (
	KindConnectRefused Kind = iota // dial refused or unreachable
	KindConnectTimeout             // dial did not complete in time
	KindPoolTimeout                // no connection slot freed up in time
	KindWrite                      // writing the request to the instance failed
	KindClientBody                 // reading the request body from the client failed
	KindTimeout                    // no response headers in time
	KindReset                      // connection closed or reset before response headers
	KindMalformed                  // the instance sent a response that does not parse
	numKinds
)

var kindNames = [numKinds]string{
	KindConnectRefused: "connect_refused",
	KindConnectTimeout: "connect_timeout",
	KindPoolTimeout:    "pool_exhausted",
	KindWrite:          "write",
	KindClientBody:     "client_body",
	KindTimeout:        "timeout",
	KindReset:          "reset",
	KindMalformed:      "malformed",
}

// String is the kind's metric label.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds lists every kind, for pre-registering metrics.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// Error is a failed exchange.
type Error struct {
	Kind Kind
	// Sent is true when any byte of the request reached the connection, so
	// the instance may have acted on it.
	Sent bool
	Err  error

	// stale marks failures on a reused connection that the instance had
	// closed before it read anything: safe to send again.
	stale bool
	// early marks a reused connection found readable before anything was
	// sent on it (see errEarly): stale, and safe to send again whatever
	// the request.
	early bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("upstream: %s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// errEarly is the failure of a reused connection that had bytes waiting,
// or had been closed by the instance, when it was taken for a request:
// nothing was sent. RoundTrip drops the connection and sends the request
// on a new one, so this error never leaves it.
var errEarly = &Error{Kind: KindReset, Err: errors.New("upstream: reused connection readable before the request"),
	stale: true, early: true}

// ErrPoolExhausted is wrapped by KindPoolTimeout errors.
var ErrPoolExhausted = errors.New("upstream: connection limit reached")

// ErrTransportClosed is returned after Close.
var ErrTransportClosed = errors.New("upstream: transport closed")

// AsError returns err as *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
