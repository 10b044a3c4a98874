package yardctl

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// runner is the cutover.Runner of a command: the route servers of s, each
// asked within --timeout, waits bounded by --wait's timeout, progress on
// stderr.
func (e *env) runner(s *zkstore.Store) *cutover.Runner {
	return &cutover.Runner{RouteServers: cutover.RouteServers{Store: s}, Store: s, ObserveTimeout: e.g.timeout,
		WaitTimeout: e.waitTimeout, Progress: e.progress}
}

// progress says a cutover.Runner's events on stderr.
func (e *env) progress(ev cutover.Event) {
	switch ev := ev.(type) {
	case cutover.Waiting:
		fmt.Fprintf(e.stderr, "%d of %d proxies at version %s, %.1fs\n", ev.Current, ev.Proxies, zxid(ev.Version), ev.Elapsed.Seconds())
	case cutover.CutOver:
		fmt.Fprintf(e.stderr, "cutover %s: serving %s (was %s), zxid %s\n",
			ev.Deployment, servingText(ev.Serving), servingText(ev.Previous), zxid(ev.Zxid))
	case cutover.Unapplied:
		fmt.Fprintf(e.stderr, "yardctl: %s; watching anyway\n", oneLine(ev.Err))
	case cutover.Watching:
		fmt.Fprintf(e.stderr, "auto-rollback: %s: %s, %.0fs of %v\n", ev.Generation, ev.Result.Observed(), ev.Result.ElapsedSeconds, ev.Window)
	case cutover.ReportsFailed:
		fmt.Fprintf(e.stderr, "auto-rollback: cannot read the proxies' reports: %v\n", ev.Err)
	case cutover.RollingBack:
		fmt.Fprintf(e.stderr, "auto-rollback: %s; rolling back to %s (zxid %s)\n", ev.Why, servingText(ev.Serving), zxid(ev.Zxid))
	}
}

// waitProxies waits until every proxy the route servers report has
// applied version (cutover.Runner.Wait), saying progress on stderr; after
// e.waitTimeout it fails naming the proxies that lag.
func waitProxies(ctx context.Context, e *env, s *zkstore.Store, name string, version int64) (cutover.WaitResult, error) {
	w, err := e.runner(s).Wait(ctx, version)
	if err != nil {
		return w, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

// proxyView is the proxies the route servers report, deduplicated by ID,
// each with the highest version any route server saw.
type proxyView struct {
	versions     cutover.Applied
	routeServers int // registered
	unreachable  []string
}

// observe asks every registered route server for the proxies it has
// heard from, each /status within timeout.
func observe(ctx context.Context, s *zkstore.Store, timeout time.Duration) (proxyView, error) {
	obs, err := cutover.RouteServers{Store: s}.Observe(ctx, timeout)
	return proxyView{versions: obs.Applied(), routeServers: obs.RouteServers, unreachable: obs.Unreachable}, err
}

// lagging lists the proxies below version, by ID, with their version.
func (v proxyView) lagging(version int64) []string { return v.versions.Behind(version) }
