// Package proxy is Switchyard's request path: it finds each request's
// deployment in the cached route table, picks an instance, forwards the
// request over a pooled connection, streams both bodies, and answers
// failures with the status codes of the design.
//
// # Lifecycle
//
// New builds a Server; a routes.Source feeds it tables through Apply and
// Reject; Run serves until its context ends, then drains: /_health turns
// 502, the listener keeps accepting for DrainDelay, stops, and running
// requests get up to ShutdownTimeout to finish.
//
// # Hot path
//
// The route table is read through one atomic pointer; route keys are
// lowercased into a stack buffer and looked up without allocating.
package proxy
