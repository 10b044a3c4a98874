// Package loadtest generates HTTP load against a target and reports what it
// saw: requests per second, counts by status and error kind, and latency
// percentiles from an HDR histogram.
//
// # Loops
//
// A closed loop (Config.Rate 0) keeps every connection busy: each sends its
// next request as soon as the previous one finished. It measures how much the
// target can serve.
//
// An open loop (Config.Rate > 0) sends request k at its intended time,
// start + k/Rate, over a pool of connections, whatever the target does. A
// request that falls due while every connection is busy waits for one, and
// its latency is measured from its intended time, the wait included: a
// stall of the target counts against every request that fell due during
// it, not only the one that stalled (no coordinated omission). A request
// that finds a connection free is timed from when it leaves, so the
// generator's own timer jitter is not charged to the target. Waiting
// requests are a counter, not a queue; a request's timeout also runs from
// its intended time, which bounds the backlog to Rate × Timeout requests.
//
// # Use
//
// Run blocks until the run ends; Start returns a *Load that can be watched
// with Snapshot and ended with Stop. Tests of other packages use it to put
// bounded constant-rate load on the proxy while they inject faults, then
// assert Report.Failed() == 0, and count which instance answered each request
// with Config.OnResponse.
//
// The yardload command line over this package is internal/yardload. This
// package imports no other package of the project.
package loadtest
