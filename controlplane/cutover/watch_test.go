package cutover

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes/zkstore"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		arg    string
		window time.Duration
		rate   float64
		err    string
	}{
		{"5m:5%", 5 * time.Minute, 0.05, ""},
		{"30s:0.1", 30 * time.Second, 0.1, ""},
		{"30s", 0, 0, `"30s" is not WINDOW:RATE (for example 5m:5%)`},
		{"soon:5%", 0, 0, `window "soon" is not a positive duration`},
		{"0s:5%", 0, 0, `window "0s" is not a positive duration`},
		{"1m:0", 0, 0, `rate "0" is not between 0 and 1 (or 0% and 100%)`},
		{"1m:100%", 0, 0, `rate "100%" is not between 0 and 1 (or 0% and 100%)`},
		{"1m:1", 0, 0, `rate "1" is not between 0 and 1 (or 0% and 100%)`},
	} {
		s, err := ParseSpec(c.arg)
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%q: error %v; want %q", c.arg, err, c.err)
		case c.err == "" && (err != nil || s != Spec{Window: c.window, Rate: c.rate, MinRequests: DefaultMinRequests}):
			t.Errorf("%q: %+v, %v; want window %v rate %v", c.arg, s, err, c.window, c.rate)
		}
	}
}

func TestSpecFails(t *testing.T) {
	s := Spec{Window: time.Minute, Rate: 0.05, MinRequests: 20}
	for _, c := range []struct {
		c    Count
		want bool
	}{
		{Count{19, 19}, false}, // too few attempts to be a rate
		{Count{20, 1}, false},  // 5%: not over
		{Count{20, 2}, true},
		{Count{1000, 50}, false},
		{Count{1000, 51}, true},
	} {
		if got := s.Fails(c.c); got != c.want {
			t.Errorf("Fails(%+v) = %v; want %v", c.c, got, c.want)
		}
	}
}

func TestTallyCountsSinceBaseline(t *testing.T) {
	baseline := map[string]Count{"p1": {100, 50}, "p2": {10, 0}}
	w := newTally(baseline)
	// p1 restarted (counts under its baseline): all it has is new. p3 is
	// new. p2 added 5 requests.
	total, proxies := w.update(map[string]Count{"p1": {4, 1}, "p2": {15, 0}, "p3": {6, 6}})
	if total != (Count{15, 7}) || proxies != 3 {
		t.Fatalf("total %+v from %d proxies; want {15 7} from 3", total, proxies)
	}
	// p3's report is gone (it stopped): what it contributed stays.
	total, _ = w.update(map[string]Count{"p1": {10, 1}, "p2": {15, 0}})
	if total != (Count{21, 7}) {
		t.Fatalf("total %+v after p3's report went; want {21 7}", total)
	}
	if baseline["p1"] != (Count{100, 50}) {
		t.Errorf("the caller's baseline was changed: %v", baseline)
	}
}

// watched is a cutover of dep from a blue/green canary to green, with two
// proxies reporting, and a Runner on a fake clock.
func watched(t *testing.T) (*Runner, *fakeFleet, *Target, *events) {
	t.Helper()
	clk := newClock()
	canary := map[string]int{"blue": 90, "green": 10}
	st := &fakeStore{serving: maps.Clone(canary), zxid: 0x10}
	tg := target()
	tg.Deployment.Serving = canary
	tg.Zones = nil
	// Before the cutover, green already failed a lot (the canary): that is
	// the baseline, not counted against this cutover.
	f := &fakeFleet{clock: clk, store: st, counts: map[string]Count{"p1": {200, 150}, "p2": {}}}
	evs := &events{}
	r := &Runner{RouteServers: f, Store: st, Clock: clk, WaitTimeout: 5 * time.Second, Progress: evs.add}
	return r, f, tg, evs
}

func run(t *testing.T, r *Runner, tg *Target, spec string) (*Watched, error) {
	t.Helper()
	s, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := r.Counts(t.Context(), "dep", "green")
	if err != nil {
		t.Fatal(err)
	}
	return r.CutoverWatched(t.Context(), tg, "green", s, baseline)
}

func TestCutoverWatchedHolds(t *testing.T) {
	r, f, tg, evs := watched(t)
	// 1 failure in 40 attempts, under 5%.
	f.onPoll = func(n int) {
		if n > 3 {
			f.counts["p1"], f.counts["p2"] = Count{220, 151}, Count{20, 0}
		}
	}
	start := r.Clock.Now()
	res, err := run(t, r, tg, "5m:5%")
	if err != nil || res.WaitErr != nil {
		t.Fatalf("CutoverWatched: %v, wait %v", err, res.WaitErr)
	}
	if took := r.Clock.Now().Sub(start); took < 5*time.Minute || took > 5*time.Minute+time.Second {
		t.Errorf("the watch took %v; want the 5m window", took)
	}
	w := res.Watch
	if w.RolledBack || w.Observed() != "1 of 40 attempts failed (2.5%) at 2 proxies" || w.Rate != 0.05 || w.WindowSeconds != 300 {
		t.Errorf("watch result %+v (%s)", w, w.Observed())
	}
	green := map[string]int{"blue": 0, "green": 100}
	if !maps.Equal(res.Serving, green) || !maps.Equal(res.Previous, map[string]int{"blue": 90, "green": 10}) || res.Zxid != 0x11 ||
		res.Wait.Current != 2 || !maps.Equal(f.store.serving, green) || len(f.store.writes) != 1 {
		t.Errorf("result %+v, store %v after %q", res, f.store.serving, f.store.writes)
	}
	// The cutover, then one progress line a second for the window, from
	// 0s to 300s.
	if (*evs)[0] != "cutover dep map[blue:0 green:100] was map[blue:90 green:10] at 0x11" ||
		(*evs)[1] != "watching green: 0 of 0 attempts failed (0.0%) at 0 proxies, 0s of 5m0s" ||
		len(*evs) != 1+301 || (*evs)[len(*evs)-1] != "watching green: 1 of 40 attempts failed (2.5%) at 2 proxies, 300s of 5m0s" {
		t.Errorf("%d events: first %q, last %q", len(*evs), (*evs)[:2], (*evs)[len(*evs)-1])
	}
}

func TestCutoverWatchedRollsBack(t *testing.T) {
	r, f, tg, evs := watched(t)
	f.onPoll = func(n int) {
		if n > 3 {
			f.counts["p1"] = Count{220, 160} // +20 attempts, +10 failures
			f.counts["p2"] = Count{10, 0}
		}
	}
	res, err := run(t, r, tg, "1m:5%")
	if err != nil {
		t.Fatal(err)
	}
	w := res.Watch
	canary := map[string]int{"blue": 90, "green": 10}
	if !w.RolledBack || !maps.Equal(w.Serving, canary) || w.Zxid != 0x12 || w.Wait == nil || w.Wait.Current != 2 ||
		w.Observed() != "10 of 30 attempts failed (33.3%) at 2 proxies" || !maps.Equal(f.store.serving, canary) {
		t.Errorf("watch result %+v; store %v", w, f.store.serving)
	}
	want := []string{
		"cutover dep map[blue:0 green:100] was map[blue:90 green:10] at 0x11",
		"watching green: 0 of 0 attempts failed (0.0%) at 0 proxies, 0s of 1m0s",
		"rolling back map[blue:90 green:10] at 0x12: generation green: 10 of 30 attempts failed (33.3%) at 2 proxies, over 5.0%, 0.2s after the cutover",
	}
	if !slices.Equal(*evs, want) {
		t.Errorf("events\n%q\nwant\n%q", *evs, want)
	}
}

// The serving map changed during the watch: the rollback must not
// overwrite it.
func TestCutoverWatchedConflict(t *testing.T) {
	r, f, tg, _ := watched(t)
	other := map[string]int{"blue": 100, "green": 0}
	f.onPoll = func(n int) {
		if n == 4 {
			f.store.serving = other
		}
		if n > 4 {
			f.counts["p1"] = Count{300, 250}
		}
	}
	res, err := run(t, r, tg, "1m:5%")
	if !errors.Is(err, zkstore.ErrConflict) || !strings.HasPrefix(err.Error(), "cutover dep: generation green: 100 of 100 attempts failed (100.0%) at 1 proxies, over 5.0%, 0.4s after the cutover; not rolled back: the serving map was changed meanwhile") {
		t.Fatalf("CutoverWatched: %v; want a conflict", err)
	}
	if res == nil || res.Watch.RolledBack || !maps.Equal(f.store.serving, other) {
		t.Errorf("result %+v; store %v; want the other writer's map", res, f.store.serving)
	}
}

// A proxy that never applies the cutover does not disarm the watch.
func TestCutoverWatchedWithAProxyBehind(t *testing.T) {
	r, f, tg, evs := watched(t)
	f.behind = map[string]bool{"p2": true}
	f.onPoll = func(n int) {
		if n > 3 {
			f.counts["p1"] = Count{250, 200}
		}
	}
	res, err := run(t, r, tg, "1m:5%")
	// The rollback's wait fails too: p2 never applies anything.
	if err == nil || !strings.HasPrefix(err.Error(), "cutover dep: rolled back (generation green: 50 of 50 attempts failed (100.0%) at 1 proxies, over 5.0%") ||
		!strings.HasSuffix(err.Error(), "after the cutover): rollback: written (zxid 0x12), but after 5s 1 of 2 proxies lag: p2 (at 0x1)") {
		t.Fatalf("CutoverWatched: %v", err)
	}
	if res.WaitErr == nil || res.WaitErr.Error() != "cutover: written (zxid 0x11), but after 5s 1 of 2 proxies lag: p2 (at 0x1)" || !res.Watch.RolledBack {
		t.Errorf("result %+v", res)
	}
	if !slices.Contains(*evs, "unapplied "+res.WaitErr.Error()) {
		t.Errorf("no Unapplied event in %q", *evs)
	}
}

func TestCutoverWatchedRefusals(t *testing.T) {
	r, f, tg, _ := watched(t)
	tg.Deployment.Serving = map[string]int{"blue": 0, "green": 100}
	if res, err := run(t, r, tg, "1m:5%"); res != nil || !errors.Is(err, ErrNoChange) || err.Error() != "dep already sends all traffic to green" {
		t.Errorf("a cutover that changes nothing: %+v, %v", res, err)
	}

	r, f, tg, _ = watched(t)
	f.store.fail = zkstore.ErrNotFound
	if res, err := run(t, r, tg, "1m:5%"); res != nil || !errors.Is(err, zkstore.ErrNotFound) {
		t.Errorf("a refused write: %+v, %v; want the store's error", res, err)
	}

	// The reports cannot be read for a while: said, and the watch goes on.
	r, f, tg, evs := watched(t)
	f.fail = func(n int) error {
		if n > 3 && n < 6 {
			return errors.New("zk: connection closed")
		}
		return nil
	}
	if _, err := run(t, r, tg, "2s:5%"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(*evs, "reports failed zk: connection closed") {
		t.Errorf("events %q; want the failed reading", *evs)
	}

	r, _, tg, _ = watched(t)
	ctx, cancel := context.WithCancel(t.Context())
	r.Progress = func(ev Event) {
		if _, ok := ev.(Watching); ok {
			cancel()
		}
	}
	baseline, _ := r.Counts(ctx, "dep", "green")
	res, err := r.CutoverWatched(ctx, tg, "green", Spec{Window: time.Minute, Rate: 0.05, MinRequests: 20}, baseline)
	if !errors.Is(err, context.Canceled) || err.Error() != "cutover: watching green for auto-rollback: context canceled (not rolled back)" || res == nil {
		t.Errorf("a cancelled watch: %+v, %v", res, err)
	}
}
