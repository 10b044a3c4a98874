package cutover

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWaitUntilEveryProxyApplied(t *testing.T) {
	clk := newClock()
	st := &fakeStore{zxid: 0x20}
	// p2 catches up at the 4th poll.
	f := &fakeFleet{clock: clk, store: st, counts: map[string]Count{"p1": {}, "p2": {}}, behind: map[string]bool{"p2": true}}
	f.onPoll = func(n int) {
		if n == 4 {
			delete(f.behind, "p2")
		}
	}
	var evs events
	r := &Runner{RouteServers: f, Clock: clk, WaitTimeout: 10 * time.Second, Progress: evs.add}
	res, err := r.Wait(t.Context(), 0x20)
	if err != nil || res.Proxies != 2 || res.Current != 2 || res.Version != 0x20 || res.ElapsedSeconds != 0.6 {
		t.Fatalf("Wait = %+v, %v; want 2 of 2 at 0x20 after 0.6s", res, err)
	}
	// Said once: the numbers did not change and less than a second passed.
	if want := []string{"waiting 1/2 at 0x20 0s"}; !slices.Equal(evs, want) {
		t.Errorf("events %q; want %q", evs, want)
	}
	if got := res.String(); got != "2 of 2 proxies at version 0x20 after 0.6s" {
		t.Errorf("String() = %q", got)
	}
}

func TestWaitGivesUp(t *testing.T) {
	clk := newClock()
	st := &fakeStore{zxid: 0x20}
	f := &fakeFleet{clock: clk, store: st, counts: map[string]Count{"p1": {}, "p2": {}}, behind: map[string]bool{"p2": true}}
	var evs events
	r := &Runner{RouteServers: f, Clock: clk, WaitTimeout: 3 * time.Second, Progress: evs.add}
	start := clk.now
	res, err := r.Wait(t.Context(), 0x20)
	var le *LagError
	if !errors.As(err, &le) || err.Error() != "written (zxid 0x20), but after 3s 1 of 2 proxies lag: p2 (at 0x1)" {
		t.Fatalf("Wait: %v; want a *LagError naming p2", err)
	}
	if took := clk.now.Sub(start); took < 3*time.Second || took > 3500*time.Millisecond || res.Current != 1 {
		t.Errorf("gave up after %v with %+v; want after 3s with 1 current", took, res)
	}
	// Said once a second while nothing changes.
	if len(evs) != 4 || evs[3] != "waiting 1/2 at 0x20 3s" {
		t.Errorf("events %q; want one a second, the last at 3s", evs)
	}

	// The route servers cannot be listed: the wait says why when it gives up.
	f.fail = func(int) error { return errors.New("zk: connection closed") }
	_, err = r.Wait(t.Context(), 0x20)
	if want := "written (zxid 0x20), but could not list the route servers within 3s: zk: connection closed"; err == nil || err.Error() != want {
		t.Errorf("Wait without route servers: %v; want %q", err, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.fail = nil
	if _, err = r.Wait(ctx, 0x20); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "written (zxid 0x20), waiting for proxies: ") {
		t.Errorf("Wait cancelled: %v", err)
	}
}

func TestWaitNoProxies(t *testing.T) {
	clk := newClock()
	r := &Runner{RouteServers: &fakeFleet{clock: clk, store: &fakeStore{}}, Clock: clk}
	res, err := r.Wait(t.Context(), 0x20)
	if err != nil || res.String() != "no proxies reported (0.0s)" {
		t.Errorf("Wait with no proxies = %q, %v", res, err)
	}
}
