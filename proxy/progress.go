package proxy

import "time"

// progress hears of the request path's progress, for what paces itself
// by it (the idle napper). Its methods run on every request and must not
// block or allocate.
type progress interface {
	requestStarted(at time.Time)  // a request's headers were read at
	responseArrived(at time.Time) // an instance's response headers arrived at
	bodyMoved()                   // a response body read moved bytes
}

// noProgress is the progress of a proxy without idle naps.
type noProgress struct{}

func (noProgress) requestStarted(time.Time)  {}
func (noProgress) responseArrived(time.Time) {}
func (noProgress) bodyMoved()                {}
