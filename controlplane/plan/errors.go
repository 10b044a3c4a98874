package plan

import (
	"errors"
	"fmt"
)

// Errors of the package; others wrap them or a ZooKeeper client error.
var (
	// ErrInvalid: a plan, a status or a znode's content is not valid.
	// Refused input is an *Error wrapping it.
	ErrInvalid = errors.New("plan: invalid")
	// ErrNotFound: no plan for that deployment.
	ErrNotFound = errors.New("plan: no such plan")
	// ErrConflict: another writer changed a znode between a read and a
	// write guarded by its version. Read again and decide again.
	ErrConflict = errors.New("plan: concurrent change")
	// ErrRunning: Delete refused a plan whose status says running.
	ErrRunning = errors.New("plan: a change is running")
	// ErrSuperseded: Wait gave up on a revision because the plan has a
	// newer one, which the constructor executes instead.
	ErrSuperseded = errors.New("plan: superseded by a newer revision")
)

// Error is a refused plan: one line saying what is wrong and where. It
// wraps ErrInvalid.
//
// Its text is "FILE:LINE: MSG" when the plan came from a file and the line
// is known, "FILE: MSG" when only the file (or the znode) is, and
// "plan: MSG" otherwise.
type Error struct {
	File string // the file or znode the plan came from; empty for values
	Line int    // 1-based line in File; 0 if unknown
	// Field is the key the problem is about, as the input spells it:
	// "deployment", "kind", "aliases", "zones", "memory" (YAML) or
	// "memory_bytes" (JSON), "spec", ...; empty for the input as a whole.
	Field string
	Index int // the element of a list field (aliases, allow)
	// Msg says what is wrong, naming the field and, once the deployment
	// ID is known to be valid, the deployment:
	// `deployment 7f3a9c2e51d04b8e: zones 0 is out of range 1-10`.
	Msg string
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return "plan: " + e.Msg
}

func (e *Error) Unwrap() error { return ErrInvalid }

// invalidf returns an *Error about field.
func invalidf(field string, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}
