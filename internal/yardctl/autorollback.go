package yardctl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/routes/zkstore"
)

// defaultMinRequests is how many attempts to the new generation the
// proxies must have reported before its error rate can roll it back: a
// single failure of the first request is not a rate.
const defaultMinRequests = 20

// rollbackSpec is --auto-rollback WINDOW:RATE.
type rollbackSpec struct {
	Window      time.Duration `json:"-"`
	Rate        float64       `json:"rate"` // 0 < Rate < 1
	MinRequests uint64        `json:"min_requests"`
}

// parseRollbackSpec parses "5m:5%" or "30s:0.05".
func parseRollbackSpec(arg string) (rollbackSpec, error) {
	w, r, ok := strings.Cut(arg, ":")
	if !ok {
		return rollbackSpec{}, usagef("cutover: --auto-rollback: %q is not WINDOW:RATE (for example 5m:5%%)", arg)
	}
	window, err := time.ParseDuration(w)
	if err != nil || window <= 0 {
		return rollbackSpec{}, usagef("cutover: --auto-rollback: window %q is not a positive duration", w)
	}
	pct := strings.HasSuffix(r, "%")
	rate, err := strconv.ParseFloat(strings.TrimSuffix(r, "%"), 64)
	if pct {
		rate /= 100
	}
	if err != nil || !(rate > 0 && rate < 1) {
		return rollbackSpec{}, usagef("cutover: --auto-rollback: rate %q is not between 0 and 1 (or 0%% and 100%%)", r)
	}
	return rollbackSpec{Window: window, Rate: rate, MinRequests: defaultMinRequests}, nil
}

// genCount is attempts and failures.
type genCount struct{ requests, errors uint64 }

// proxyCounts reads, from every route server, each proxy's latest report
// for generation gen of deployment id (the newest report when two route
// servers have one from the same proxy).
func proxyCounts(ctx context.Context, e *env, s *zkstore.Store, id, gen string) (map[string]genCount, []string, error) {
	rss, err := s.RouteServers(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(rss) == 0 {
		return nil, nil, errors.New("no route server is registered")
	}
	counts := map[string]genCount{}
	at := map[string]time.Time{}
	var unreachable []string
	for _, rs := range fetchStatuses(ctx, rss, min(e.g.timeout, 5*time.Second)) {
		if rs.Status == nil {
			unreachable = append(unreachable, rs.Name)
			continue
		}
		for _, r := range rs.Status.Reports {
			if t, ok := at[r.Proxy]; ok && !r.ReportedAt.After(t) {
				continue
			}
			for _, g := range r.Generations {
				if g.Deployment == id && g.Generation == gen {
					counts[r.Proxy], at[r.Proxy] = genCount{g.Requests, g.Errors}, r.ReportedAt
				}
			}
		}
	}
	if len(unreachable) == len(rss) {
		return nil, unreachable, fmt.Errorf("no route server answered (%s)", strings.Join(unreachable, ", "))
	}
	return counts, unreachable, nil
}

// rollbackResult is the -o json "auto_rollback" of a cutover.
type rollbackResult struct {
	Rate           float64        `json:"rate"`
	WindowSeconds  float64        `json:"window_seconds"`
	MinRequests    uint64         `json:"min_requests"`
	Requests       uint64         `json:"requests"`
	Errors         uint64         `json:"errors"`
	Proxies        int            `json:"proxies"` // that reported attempts
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	RolledBack     bool           `json:"rolled_back"`
	Serving        map[string]int `json:"serving,omitempty"` // written by the rollback
	Zxid           int64          `json:"zxid,omitempty"`
	Wait           *waitResult    `json:"wait,omitempty"` // for the rollback
}

func (r *rollbackResult) observed() string {
	pct := 0.0
	if r.Requests > 0 {
		pct = 100 * float64(r.Errors) / float64(r.Requests)
	}
	return fmt.Sprintf("%d of %d attempts failed (%.1f%%) at %d proxies", r.Errors, r.Requests, pct, r.Proxies)
}

// watcher sums the proxies' attempts to a generation since a baseline.
// Each proxy's counts are cumulative since it started: a count below the
// baseline means the proxy restarted, and then all of it is new. A proxy
// whose report disappears keeps what it contributed.
type watcher struct {
	baseline map[string]genCount
	since    map[string]genCount // per proxy, since the baseline
}

func (w *watcher) update(now map[string]genCount) (total genCount, proxies int) {
	for p, c := range now {
		b := w.baseline[p]
		if c.requests < b.requests || c.errors < b.errors {
			b = genCount{}
			w.baseline[p] = b
		}
		w.since[p] = genCount{c.requests - b.requests, c.errors - b.errors}
	}
	for _, c := range w.since {
		total.requests += c.requests
		total.errors += c.errors
		if c.requests > 0 {
			proxies++
		}
	}
	return total, proxies
}

// autoRollback watches generation gen of t for spec.Window after the
// cutover that wrote serving reached the proxies. When the proxies'
// attempts to it since baseline fail at more than spec.Rate (after at
// least spec.MinRequests), it writes back previous — only if serving is
// still what the cutover wrote — and waits for the proxies.
func autoRollback(ctx context.Context, e *env, t *target, gen string, spec rollbackSpec,
	baseline map[string]genCount, serving, previous map[string]int) (*rollbackResult, error) {
	res := &rollbackResult{Rate: spec.Rate, WindowSeconds: spec.Window.Seconds(), MinRequests: spec.MinRequests}
	w := &watcher{baseline: baseline, since: map[string]genCount{}}
	start := time.Now()
	var lastPrint time.Time
	for {
		counts, _, err := proxyCounts(ctx, e, t.s, t.id, gen)
		res.ElapsedSeconds = time.Since(start).Seconds()
		if err != nil {
			fmt.Fprintf(e.stderr, "auto-rollback: cannot read the proxies' reports: %v\n", err)
		} else {
			total, proxies := w.update(counts)
			res.Requests, res.Errors, res.Proxies = total.requests, total.errors, proxies
			if total.requests >= spec.MinRequests && float64(total.errors) > spec.Rate*float64(total.requests) {
				return res, rollBack(ctx, e, t, gen, res, serving, previous)
			}
		}
		if time.Since(lastPrint) >= time.Second {
			fmt.Fprintf(e.stderr, "auto-rollback: %s: %s, %.0fs of %v\n", gen, res.observed(), res.ElapsedSeconds, spec.Window)
			lastPrint = time.Now()
		}
		if time.Since(start) >= spec.Window {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("cutover: watching %s for auto-rollback: %w (not rolled back)", gen, ctx.Err())
		case <-time.After(min(pollInterval, time.Until(start.Add(spec.Window))+time.Millisecond)):
		}
	}
}

func rollBack(ctx context.Context, e *env, t *target, gen string, res *rollbackResult, serving, previous map[string]int) error {
	why := fmt.Sprintf("generation %s: %s, over %.1f%%, %.1fs after the cutover", gen, res.observed(), 100*res.Rate, res.ElapsedSeconds)
	z, err := t.s.SetServingIf(ctx, t.id, serving, previous)
	if errors.Is(err, zkstore.ErrConflict) {
		return fmt.Errorf("cutover %s: %s; not rolled back: the serving map was changed meanwhile (%w)", t.id, why, err)
	}
	if err != nil {
		return fmt.Errorf("cutover %s: %s; rolling back failed: %w", t.id, why, err)
	}
	res.RolledBack, res.Serving, res.Zxid = true, previous, z
	fmt.Fprintf(e.stderr, "auto-rollback: %s; rolling back to %s (zxid %s)\n", why, servingText(previous), zxid(z))
	wr, werr := waitProxies(ctx, e, t.s, "rollback", z)
	res.Wait = &wr
	if werr != nil {
		return fmt.Errorf("cutover %s: rolled back (%s): %w", t.id, why, werr)
	}
	return nil
}

// runCutoverWatched is cutover --auto-rollback: take the baseline, write,
// wait for the proxies, watch, and roll back if the new generation fails.
// It exits 1 when it rolled back.
func runCutoverWatched(ctx context.Context, e *env, t *target, gen string, spec rollbackSpec) error {
	baseline, _, err := proxyCounts(ctx, e, t.s, t.id, gen)
	if err != nil {
		return fmt.Errorf("cutover: --auto-rollback needs the proxies' reports through the route servers: %w", err)
	}
	serving := t.withZeros(map[string]int{gen: 100})
	previous := t.dd.Serving
	if maps.Equal(serving, previous) {
		return usagef("cutover: %s already serves %s; nothing to watch", t.id, servingText(serving))
	}
	z, err := t.writeServing(ctx, "cutover", serving)
	if err != nil {
		return err
	}
	out := changeOut{Deployment: t.id, Serving: serving, PreviousServing: previous, Zxid: z}
	fmt.Fprintf(e.stderr, "cutover %s: serving %s (was %s), zxid %s\n", t.id, servingText(serving), servingText(previous), zxid(z))
	// Proxies that lag past --timeout do not disarm the watch: the ones
	// that applied the cutover report on it. The lag is the command's
	// error in the end, unless it rolled back.
	w, waitErr := waitProxies(ctx, e, t.s, "cutover", z)
	out.Wait = &w
	if waitErr != nil {
		fmt.Fprintf(e.stderr, "yardctl: %s; watching anyway\n", oneLine(waitErr))
	}
	res, err := autoRollback(ctx, e, t, gen, spec, baseline, serving, previous)
	out.AutoRollback = res
	if e.json() {
		if werr := writeJSON(e.stdout, out); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if waitErr != nil && !res.RolledBack {
		return waitErr
	}
	if res.RolledBack {
		return &rolledBack{fmt.Sprintf("cutover %s: rolled back to %s: generation %s: %s (over %.1f%%); %s",
			t.id, servingText(res.Serving), gen, res.observed(), 100*spec.Rate, res.Wait)}
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "cutover %s: serving %s, zxid %s; %s; %s held for %v: %s\n",
			t.id, servingText(serving), zxid(z), w, gen, spec.Window, res.observed())
	}
	return nil
}

// rolledBack is the error of a cutover that was rolled back: the command
// failed (exit 1), though everything it did worked.
type rolledBack struct{ line string }

func (r *rolledBack) Error() string { return r.line }
