package cutover

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

// DefaultMinRequests is how many attempts to the new generation the
// proxies must have reported before its error rate can roll it back: a
// single failure of the first request is not a rate.
const DefaultMinRequests = 20

// Spec says how a cutover is watched.
type Spec struct {
	Window      time.Duration // how long the new generation is watched
	Rate        float64       // 0 < Rate < 1: the share of failed attempts that rolls it back
	MinRequests uint64        // attempts needed before Rate applies
}

// ParseSpec parses WINDOW:RATE, "5m:5%" or "30s:0.05", with
// DefaultMinRequests.
func ParseSpec(arg string) (Spec, error) {
	w, r, ok := strings.Cut(arg, ":")
	if !ok {
		return Spec{}, fmt.Errorf("%q is not WINDOW:RATE (for example 5m:5%%)", arg)
	}
	window, err := time.ParseDuration(w)
	if err != nil || window <= 0 {
		return Spec{}, fmt.Errorf("window %q is not a positive duration", w)
	}
	pct := strings.HasSuffix(r, "%")
	rate, err := strconv.ParseFloat(strings.TrimSuffix(r, "%"), 64)
	if pct {
		rate /= 100
	}
	if err != nil || !(rate > 0 && rate < 1) {
		return Spec{}, fmt.Errorf("rate %q is not between 0 and 1 (or 0%% and 100%%)", r)
	}
	return Spec{Window: window, Rate: rate, MinRequests: DefaultMinRequests}, nil
}

// Fails reports whether attempts c roll the generation back: at least
// MinRequests of them, and more than Rate failed.
func (s Spec) Fails(c Count) bool {
	return c.Requests >= s.MinRequests && float64(c.Errors) > s.Rate*float64(c.Requests)
}

// Store writes serving maps; *zkstore.Store is one. Both methods return
// the zxid of the write.
type Store interface {
	// SetServing writes serving, keeping the map it replaces as the
	// previous one.
	SetServing(ctx context.Context, id string, serving map[string]int) (int64, error)
	// SetServingIf is SetServing done only while the stored map is still
	// expect; otherwise the error wraps zkstore.ErrConflict.
	SetServingIf(ctx context.Context, id string, expect, serving map[string]int) (int64, error)
}

// tally sums the proxies' attempts to a generation since a baseline. Each
// proxy's counts are cumulative since it started: a count below the
// baseline means the proxy restarted, and then all of it is new. A proxy
// whose report disappears keeps what it contributed.
type tally struct {
	baseline map[string]Count
	since    map[string]Count // per proxy, since the baseline
}

func newTally(baseline map[string]Count) *tally {
	return &tally{baseline: maps.Clone(baseline), since: map[string]Count{}}
}

func (w *tally) update(now map[string]Count) (total Count, proxies int) {
	if w.baseline == nil {
		w.baseline = map[string]Count{}
	}
	for p, c := range now {
		b := w.baseline[p]
		if c.Requests < b.Requests || c.Errors < b.Errors {
			b = Count{}
			w.baseline[p] = b
		}
		w.since[p] = Count{c.Requests - b.Requests, c.Errors - b.Errors}
	}
	for _, c := range w.since {
		total.Requests += c.Requests
		total.Errors += c.Errors
		if c.Requests > 0 {
			proxies++
		}
	}
	return total, proxies
}

// WatchResult is what the watch of a cutover saw and did.
type WatchResult struct {
	Rate           float64        `json:"rate"`
	WindowSeconds  float64        `json:"window_seconds"`
	MinRequests    uint64         `json:"min_requests"`
	Requests       uint64         `json:"requests"` // attempts since the baseline
	Errors         uint64         `json:"errors"`   // of them, failed
	Proxies        int            `json:"proxies"`  // that reported attempts
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	RolledBack     bool           `json:"rolled_back"`
	Serving        map[string]int `json:"serving,omitempty"` // written by the rollback
	Zxid           int64          `json:"zxid,omitempty"`    // of the rollback
	Wait           *WaitResult    `json:"wait,omitempty"`    // for the rollback
}

// Observed says what the proxies reported: "3 of 480 attempts failed
// (0.6%) at 10 proxies".
func (r *WatchResult) Observed() string {
	pct := 0.0
	if r.Requests > 0 {
		pct = 100 * float64(r.Errors) / float64(r.Requests)
	}
	return fmt.Sprintf("%d of %d attempts failed (%.1f%%) at %d proxies", r.Errors, r.Requests, pct, r.Proxies)
}

// Watched is the outcome of CutoverWatched.
type Watched struct {
	Serving, Previous map[string]int // what the cutover wrote, and what it replaced
	Zxid              int64          // of the cutover
	Wait              WaitResult     // the proxies applying the cutover
	// WaitErr is set when not every proxy applied the cutover in time
	// (prefixed "cutover: "). The watch went on without them.
	WaitErr error
	Watch   *WatchResult
}

// Counts reads each proxy's latest counts for generation gen of deployment
// id from the route servers (Observation.Counts): the baseline that
// CutoverWatched takes, read before the cutover.
func (r *Runner) Counts(ctx context.Context, id, gen string) (map[string]Count, error) {
	obs, err := r.RouteServers.Observe(ctx, min(r.observeTimeout(), reportTimeout))
	if err != nil {
		return nil, err
	}
	return obs.Counts(id, gen)
}

// CutoverWatched cuts t over to gen (check t.CanServe first), waits for
// the proxies, and watches gen for spec.Window. Every PollInterval it
// reads the proxies' attempts to gen since baseline (Counts, read before);
// when spec.Fails them it writes back the serving map from before the
// cutover, only if the stored map is still the cutover's, and waits for
// the proxies to apply that.
//
// Before writing it fails with an *Error wrapping ErrNoChange when the
// cutover would change nothing, or with the Store's error. Once it has
// written, it returns a *Watched: proxies that lag behind the cutover do
// not disarm the watch (see WaitErr), and a rollback is a result
// (Watch.RolledBack), not an error. The error then says what went wrong
// during the watch or the rollback.
func (r *Runner) CutoverWatched(ctx context.Context, t *Target, gen string, spec Spec, baseline map[string]Count) (*Watched, error) {
	id := t.Deployment.ID
	serving, previous := t.Cutover(gen), t.Deployment.Serving
	if maps.Equal(serving, previous) {
		return nil, &Error{Err: ErrNoChange, Msg: fmt.Sprintf("%s already sends all traffic to %s", id, gen)}
	}
	z, err := r.Store.SetServing(ctx, id, serving)
	if err != nil {
		return nil, err
	}
	out := &Watched{Serving: serving, Previous: previous, Zxid: z}
	r.emit(CutOver{Deployment: id, Serving: serving, Previous: previous, Zxid: z})
	out.Wait, out.WaitErr = r.Wait(ctx, z)
	if out.WaitErr != nil {
		out.WaitErr = fmt.Errorf("cutover: %w", out.WaitErr)
		r.emit(Unapplied{Err: out.WaitErr})
	}
	out.Watch, err = r.watch(ctx, id, gen, spec, baseline, serving, previous)
	return out, err
}

// watch is the watch of CutoverWatched, after the cutover.
func (r *Runner) watch(ctx context.Context, id, gen string, spec Spec, baseline map[string]Count,
	serving, previous map[string]int) (*WatchResult, error) {
	clk := r.clock()
	res := &WatchResult{Rate: spec.Rate, WindowSeconds: spec.Window.Seconds(), MinRequests: spec.MinRequests}
	w := newTally(baseline)
	start := clk.Now()
	var lastSaid time.Time
	for {
		counts, err := r.Counts(ctx, id, gen)
		now := clk.Now()
		res.ElapsedSeconds = now.Sub(start).Seconds()
		if err != nil {
			r.emit(ReportsFailed{Err: err})
		} else {
			total, proxies := w.update(counts)
			res.Requests, res.Errors, res.Proxies = total.Requests, total.Errors, proxies
			if spec.Fails(total) {
				return res, r.rollBack(ctx, id, gen, res, serving, previous)
			}
		}
		if now.Sub(lastSaid) >= time.Second {
			r.emit(Watching{Generation: gen, Result: *res, Window: spec.Window})
			lastSaid = now
		}
		if now.Sub(start) >= spec.Window {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("cutover: watching %s for auto-rollback: %w (not rolled back)", gen, ctx.Err())
		case <-clk.After(min(PollInterval, start.Add(spec.Window).Sub(now)+time.Millisecond)):
		}
	}
}

// rollBack writes previous back, if the stored map is still serving, and
// waits for the proxies.
func (r *Runner) rollBack(ctx context.Context, id, gen string, res *WatchResult, serving, previous map[string]int) error {
	why := fmt.Sprintf("generation %s: %s, over %.1f%%, %.1fs after the cutover", gen, res.Observed(), 100*res.Rate, res.ElapsedSeconds)
	z, err := r.Store.SetServingIf(ctx, id, serving, previous)
	if errors.Is(err, zkstore.ErrConflict) {
		return fmt.Errorf("cutover %s: %s; not rolled back: the serving map was changed meanwhile (%w)", id, why, err)
	}
	if err != nil {
		return fmt.Errorf("cutover %s: %s; rolling back failed: %w", id, why, err)
	}
	res.RolledBack, res.Serving, res.Zxid = true, previous, z
	r.emit(RollingBack{Why: why, Serving: previous, Zxid: z})
	wr, werr := r.Wait(ctx, z)
	res.Wait = &wr
	if werr != nil {
		return fmt.Errorf("cutover %s: rolled back (%s): rollback: %w", id, why, werr)
	}
	return nil
}
