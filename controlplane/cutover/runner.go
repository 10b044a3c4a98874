package cutover

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Clock is the time a Runner sees.
type Clock interface {
	Now() time.Time
	// After sends the time on the returned channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PollInterval is how often a Runner asks the route servers.
const PollInterval = 200 * time.Millisecond

// reportTimeout bounds each route server's answer when the Runner reads
// the proxies' reports during a watch.
const reportTimeout = 5 * time.Second

// Runner carries out what takes time: waiting until the proxies have
// applied a write, and watching a cutover. Set the fields, then call its
// methods; it keeps no state between calls.
type Runner struct {
	// RouteServers is where the proxies' versions and reports are read.
	RouteServers Observer
	// Store writes a watched cutover and its rollback.
	Store Store
	// ObserveTimeout bounds each route server's answer (at most 5s while
	// watching). Default 5s.
	ObserveTimeout time.Duration
	// WaitTimeout bounds a Wait. Default 60s.
	WaitTimeout time.Duration
	// Clock is the time the Runner sees. Default: the system clock.
	Clock Clock
	// Progress, when set, is called with every Event, in order, from the
	// goroutine running the method.
	Progress func(Event)
}

func (r *Runner) clock() Clock {
	if r.Clock == nil {
		return systemClock{}
	}
	return r.Clock
}

func (r *Runner) observeTimeout() time.Duration {
	if r.ObserveTimeout <= 0 {
		return 5 * time.Second
	}
	return r.ObserveTimeout
}

func (r *Runner) waitTimeout() time.Duration {
	if r.WaitTimeout <= 0 {
		return 60 * time.Second
	}
	return r.WaitTimeout
}

func (r *Runner) emit(ev Event) {
	if r.Progress != nil {
		r.Progress(ev)
	}
}

// WaitResult is what a Wait saw last.
type WaitResult struct {
	Version        int64    `json:"version"` // the write's zxid
	Proxies        int      `json:"proxies"` // live proxies reported
	Current        int      `json:"current"` // of them, at Version or later
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	Unreachable    []string `json:"unreachable_route_servers,omitempty"`
}

func (w WaitResult) String() string {
	s := fmt.Sprintf("%d of %d proxies at version %s after %.1fs", w.Current, w.Proxies, zxid(w.Version), w.ElapsedSeconds)
	if w.Proxies == 0 {
		s = fmt.Sprintf("no proxies reported (%.1fs)", w.ElapsedSeconds)
	}
	if len(w.Unreachable) > 0 {
		s += " (unreachable route servers: " + strings.Join(w.Unreachable, ", ") + ")"
	}
	return s
}

// LagError is a Wait that ran out of time with proxies behind.
type LagError struct {
	Version int64
	Timeout time.Duration
	Proxies int      // reported
	Behind  []string // as Applied.Behind says them
}

func (e *LagError) Error() string {
	return fmt.Sprintf("written (zxid %s), but after %v %d of %d proxies lag: %s",
		zxid(e.Version), e.Timeout, len(e.Behind), e.Proxies, strings.Join(e.Behind, ", "))
}

// Wait polls the route servers every PollInterval until every proxy they
// report has applied version (the zxid of a write), sending Waiting
// events. A proxy applied it when any route server saw it at version or
// later. After WaitTimeout it fails: with a *LagError naming the proxies
// behind, or with the error that kept the route servers from being
// listed.
func (r *Runner) Wait(ctx context.Context, version int64) (WaitResult, error) {
	clk := r.clock()
	start := clk.Now()
	deadline := start.Add(r.waitTimeout())
	res := WaitResult{Version: version}
	var said *Waiting // the last Waiting event sent
	var lastSaid time.Time
	var lastErr error
	for {
		obs, err := r.RouteServers.Observe(ctx, min(r.observeTimeout(), r.waitTimeout()))
		now := clk.Now()
		res.ElapsedSeconds = now.Sub(start).Seconds()
		if err != nil {
			lastErr = err
		} else {
			lastErr = nil
			applied := obs.Applied()
			behind := applied.Behind(version)
			res.Proxies, res.Current, res.Unreachable = len(applied), len(applied)-len(behind), obs.Unreachable
			if len(behind) == 0 {
				return res, nil
			}
			// Said when the numbers change, and at least once a second.
			if said == nil || said.Proxies != res.Proxies || said.Current != res.Current || now.Sub(lastSaid) >= time.Second {
				said = &Waiting{Version: version, Proxies: res.Proxies, Current: res.Current, Elapsed: now.Sub(start)}
				lastSaid = now
				r.emit(*said)
			}
			if now.After(deadline) {
				return res, &LagError{Version: version, Timeout: r.waitTimeout(), Proxies: res.Proxies, Behind: behind}
			}
		}
		if lastErr != nil && now.After(deadline) {
			return res, fmt.Errorf("written (zxid %s), but could not list the route servers within %v: %w",
				zxid(version), r.waitTimeout(), lastErr)
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("written (zxid %s), waiting for proxies: %w", zxid(version), ctx.Err())
		case <-clk.After(min(PollInterval, deadline.Sub(now)+time.Millisecond)):
		}
	}
}
