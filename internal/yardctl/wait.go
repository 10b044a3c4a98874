package yardctl

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/routes/zkstore"
)

// pollInterval is how often --wait asks the route servers.
const pollInterval = 200 * time.Millisecond

// waitResult is what --wait saw at the end.
type waitResult struct {
	Version        int64    `json:"version"` // the write's zxid
	Proxies        int      `json:"proxies"` // live proxies reported
	Current        int      `json:"current"` // of them, at >= Version
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	Unreachable    []string `json:"unreachable_route_servers,omitempty"`
}

func (w waitResult) String() string {
	s := fmt.Sprintf("%d of %d proxies at version %s after %.1fs", w.Current, w.Proxies, zxid(w.Version), w.ElapsedSeconds)
	if w.Proxies == 0 {
		s = fmt.Sprintf("no proxies reported (%.1fs)", w.ElapsedSeconds)
	}
	if len(w.Unreachable) > 0 {
		s += " (unreachable route servers: " + strings.Join(w.Unreachable, ", ") + ")"
	}
	return s
}

// proxyView is the proxies the route servers report, deduplicated by ID,
// each with the highest version any route server saw.
type proxyView struct {
	versions     map[string]int64
	routeServers int // registered
	unreachable  []string
}

// observe asks every registered route server for the proxies it has
// heard from, each /status within timeout.
func observe(ctx context.Context, s *zkstore.Store, timeout time.Duration) (proxyView, error) {
	v := proxyView{versions: map[string]int64{}}
	rss, err := s.RouteServers(ctx)
	if err != nil {
		return v, err
	}
	v.routeServers = len(rss)
	for _, rs := range fetchStatuses(ctx, rss, timeout) {
		if rs.Status == nil {
			v.unreachable = append(v.unreachable, rs.Name)
			continue
		}
		for _, p := range rs.Status.Proxies {
			if cur, ok := v.versions[p.ID]; !ok || int64(p.Version) > cur {
				v.versions[p.ID] = int64(p.Version)
			}
		}
	}
	return v, nil
}

// lagging lists the proxies below version, by ID, with their version.
func (v proxyView) lagging(version int64) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(v.versions)) {
		if v.versions[id] < version {
			out = append(out, fmt.Sprintf("%s (at %s)", id, zxid(v.versions[id])))
		}
	}
	return out
}

// waitProxies polls every registered route server's /status until every
// proxy they report has applied version, saying progress on stderr. After
// e.waitTimeout it fails naming the proxies that lag.
func waitProxies(ctx context.Context, e *env, s *zkstore.Store, name string, version int64) (waitResult, error) {
	start := time.Now()
	deadline := start.Add(e.waitTimeout)
	res := waitResult{Version: version}
	var lastLine string
	var lastPrint time.Time
	var lastErr error
	for {
		v, err := observe(ctx, s, min(e.g.timeout, e.waitTimeout))
		res.ElapsedSeconds = time.Since(start).Seconds()
		if err != nil {
			lastErr = err
		} else {
			lastErr = nil
			lag := v.lagging(version)
			res.Proxies, res.Current, res.Unreachable = len(v.versions), len(v.versions)-len(lag), v.unreachable
			line := fmt.Sprintf("%d of %d proxies at version %s", res.Current, res.Proxies, zxid(version))
			if len(lag) == 0 {
				return res, nil
			}
			if line != lastLine || time.Since(lastPrint) >= time.Second {
				fmt.Fprintf(e.stderr, "%s, %.1fs\n", line, res.ElapsedSeconds)
				lastLine, lastPrint = line, time.Now()
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("%s: written (zxid %s), but after %v %d of %d proxies lag: %s",
					name, zxid(version), e.waitTimeout, len(lag), res.Proxies, strings.Join(lag, ", "))
			}
		}
		if lastErr != nil && time.Now().After(deadline) {
			return res, fmt.Errorf("%s: written (zxid %s), but could not list the route servers within %v: %w",
				name, zxid(version), e.waitTimeout, lastErr)
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%s: written (zxid %s), waiting for proxies: %w", name, zxid(version), ctx.Err())
		case <-time.After(min(pollInterval, time.Until(deadline)+time.Millisecond)):
		}
	}
}
