package loadtest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestScheduleMath(t *testing.T) {
	for _, tc := range []struct {
		rate                float64
		k                   int64
		intended            time.Duration
		elapsed, timeout    time.Duration
		due, firstUnexpired int64
		lateAfter           time.Duration
	}{
		{rate: 100, k: 0, intended: 0, elapsed: 0, timeout: time.Second, due: 1, firstUnexpired: 0, lateAfter: 10 * time.Millisecond},
		{rate: 100, k: 250, intended: 2500 * time.Millisecond, elapsed: 2505 * time.Millisecond, timeout: time.Second,
			due: 251, firstUnexpired: 151, lateAfter: 10 * time.Millisecond},
		{rate: 3, k: 3, intended: time.Second, elapsed: -time.Second, timeout: time.Second, due: 0, firstUnexpired: 0, lateAfter: time.Second / 3},
		{rate: 20000, k: 20000, intended: time.Second, elapsed: 10 * time.Second, timeout: 9 * time.Second,
			due: 200001, firstUnexpired: 20000, lateAfter: time.Millisecond},
	} {
		interval := 1 / tc.rate
		if got := intendedAt(tc.k, interval); got != tc.intended {
			t.Errorf("rate %g: intendedAt(%d) = %v; want %v", tc.rate, tc.k, got, tc.intended)
		}
		if got := dueBy(tc.elapsed, tc.rate); got != tc.due {
			t.Errorf("rate %g: dueBy(%v) = %d; want %d", tc.rate, tc.elapsed, got, tc.due)
		}
		if got := firstUnexpired(tc.elapsed, tc.timeout, tc.rate); got != tc.firstUnexpired {
			t.Errorf("rate %g: firstUnexpired(%v, %v) = %d; want %d", tc.rate, tc.elapsed, tc.timeout, got, tc.firstUnexpired)
		}
		if got := lateAfter(interval); got != tc.lateAfter {
			t.Errorf("rate %g: lateAfter = %v; want %v", tc.rate, got, tc.lateAfter)
		}
	}
}

// A request that waited for a connection longer than the timeout is given
// up with every other one as old, in one step, and counted as a timeout.
// The clock is passed in: no sleeping.
func TestExpireSkipsTheWholeExpiredBacklog(t *testing.T) {
	p, err := newPlan(Config{URL: "http://127.0.0.1:1/", Rate: 100, Requests: 1000, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l := &Load{p: p, start: start, ctx: context.Background(), shards: []*shard{newShard()}}
	w := newWorker(l, l.shards[0], rand.NewPCG(1, 1))
	l.next.Store(6) // request 5 claimed
	w.expire(5, start.Add(3*time.Second), 2950*time.Millisecond)
	r := sum(l.shards)
	if got := l.next.Load(); got != 200 {
		t.Errorf("next request = %d; want 200, the first intended within the timeout", got)
	}
	if r.Expired != 195 || r.Errors[KindTimeout] != 195 || r.Late != 195 || r.MaxLateness != 2950*time.Millisecond ||
		r.Latency.Count != 195 || r.Latency.Max != time.Second || r.Sent != 0 {
		t.Errorf("got expired %d, timeouts %d, late %d, max lateness %v, latency count %d max %v, sent %d; "+
			"want 195 expired, timed out and late, 2.95s, 195 at 1s, 0 sent",
			r.Expired, r.Errors[KindTimeout], r.Late, r.MaxLateness, r.Latency.Count, r.Latency.Max, r.Sent)
	}
}
