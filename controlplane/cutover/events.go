package cutover

import "time"

// Event is progress a Runner reports to its Progress function: one of
// Waiting, CutOver, Unapplied, Watching, ReportsFailed and RollingBack.
type Event interface{ event() }

// Waiting: during a Wait, Current of the Proxies that the route servers
// report have applied Version. Sent when the numbers change, and at least
// once a second while they do not.
type Waiting struct {
	Version          int64
	Proxies, Current int
	Elapsed          time.Duration
}

// CutOver: a watched cutover wrote Serving, replacing Previous.
type CutOver struct {
	Deployment        string
	Serving, Previous map[string]int
	Zxid              int64
}

// Unapplied: not every proxy applied the cutover in time (Err, prefixed
// "cutover: "); the watch goes on with the proxies that did.
type Unapplied struct{ Err error }

// Watching: what the proxies reported of the new generation since the
// baseline (Result's requests, errors and proxies), Result.ElapsedSeconds
// into Window. Sent once a second.
type Watching struct {
	Generation string
	Result     WatchResult
	Window     time.Duration
}

// ReportsFailed: one reading of the proxies' reports failed; the watch
// goes on.
type ReportsFailed struct{ Err error }

// RollingBack: the new generation failed (Why), and Serving, the map from
// before the cutover, was written at Zxid. A Wait for it follows.
type RollingBack struct {
	Why     string
	Serving map[string]int
	Zxid    int64
}

func (Waiting) event()       {}
func (CutOver) event()       {}
func (Unapplied) event()     {}
func (Watching) event()      {}
func (ReportsFailed) event() {}
func (RollingBack) event()   {}
