package routes

import "fmt"

// Error is refused input: one line saying what is wrong and where. It wraps
// ErrInvalid (or ErrEmptyTable for input without deployments), so callers
// test it with errors.Is and take it apart with errors.As.
//
// Its text is "FILE:LINE: MSG" when the input was a file and the line is
// known, "FILE: MSG" when only the file is, and "routes: MSG" otherwise.
type Error struct {
	Err  error  // ErrInvalid or ErrEmptyTable
	File string // the file the input came from; empty for values
	Line int    // 1-based line in File; 0 if unknown
	// Msg says what is wrong, prefixed with the deployment and instance it
	// is about: `deployment 7f3a9c2e51d04b8e: instance i-0002: addr "foo"
	// is not host:port`.
	Msg string
	// At is what Msg is about, so that a parser can find its line.
	At Ref
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return "routes: " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Ref names the part of the input an Error is about.
type Ref struct {
	Deployment *DeploymentSpec // nil: the table itself (domain, zones)
	Instance   *Instance       // nil: the deployment itself
	// Field is the key of the field, as the routes file spells it: "id",
	// "kind", "aliases", "serving", "addr", "domain", "zones", ...
	Field string
	Index int    // element of a list field (aliases, allow)
	Key   string // key of a mapping field (serving generation, zone name)
}

// invalidf returns an *Error wrapping ErrInvalid about at.
func invalidf(at Ref, format string, args ...any) *Error {
	return &Error{Err: ErrInvalid, Msg: fmt.Sprintf(format, args...), At: at}
}
