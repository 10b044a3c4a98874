package loadtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a run in progress, from Start. Its methods are safe for
// concurrent use.
type Load struct {
	p      *plan
	start  time.Time
	ctx    context.Context // done: stop sending, cut requests in flight
	cancel context.CancelFunc
	next   atomic.Int64 // next request index to claim
	slack  atomic.Int64 // estimated timer oversleep, a time.Duration: see sleepUntil
	shards []*shard
	done   chan struct{} // closed when every connection has finished
	final  *Report
	// stoppedAt is when Stop was called or the context ended the run,
	// Unix nanoseconds; 0 when the run ended by its bounds.
	stoppedAt atomic.Int64
}

// Run runs a load until it ends by its bounds or ctx is done, and returns
// its report. It returns an error only when the run could not start: a
// *ConfigError, or a target host that does not resolve. Requests that fail
// are counted in the report, not returned.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	l, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return l.Wait(), nil
}

// Start starts a load and returns at once; see Run. The run ends by its
// bounds, when ctx is done, or on Stop; the last two cut requests in flight
// short and report them as Canceled.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	if host, _, _ := net.SplitHostPort(p.addr); net.ParseIP(host) == nil {
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	l := &Load{p: p, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	context.AfterFunc(l.ctx, func() { l.stoppedAt.CompareAndSwap(0, time.Now().UnixNano()) })
	n := p.Connections * p.streams
	l.shards = make([]*shard, min(n, 2*runtime.GOMAXPROCS(0)))
	for i := range l.shards {
		l.shards[i] = newShard()
	}
	workers := make([]*worker, n)
	seed := rand.Uint64()
	var conns []*muxConn
	if p.Protocol != HTTP1 {
		req := newMuxRequest(p)
		for range p.Connections {
			conns = append(conns, newMuxConn(p))
		}
		for i := range workers {
			workers[i] = newMuxWorker(l, l.shards[i%len(l.shards)], rand.NewPCG(seed, uint64(i)), conns[i/p.streams], req)
		}
	} else {
		for i := range workers {
			workers[i] = newWorker(l, l.shards[i%len(l.shards)], rand.NewPCG(seed, uint64(i)))
		}
	}
	l.start = time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.run)
	}
	go func() {
		wg.Wait()
		end := time.Now()
		for _, c := range conns {
			c.close()
		}
		r := l.report(end)
		if p.Rate > 0 {
			r.Unsent = l.unsent(end, r)
			r.Late += r.Unsent
		}
		l.final = r
		l.cancel()
		close(l.done)
	}()
	return l, nil
}

// Wait waits for the run to end and returns its final report. Every call
// returns the same Report; do not modify it.
func (l *Load) Wait() *Report {
	<-l.done
	return l.final
}

// Stop ends the run now, cutting requests in flight short, and returns the
// final report, as Wait.
func (l *Load) Stop() *Report {
	l.stoppedAt.CompareAndSwap(0, time.Now().UnixNano())
	l.cancel()
	return l.Wait()
}

// Done is closed when the run has ended.
func (l *Load) Done() <-chan struct{} { return l.done }

// Snapshot returns the counts so far. It costs a merge of a few histograms:
// call it at most a few times per second.
func (l *Load) Snapshot() Report {
	select {
	case <-l.done:
		return *l.final
	default:
	}
	return *l.report(time.Now())
}

func (l *Load) report(now time.Time) *Report {
	r := sum(l.shards)
	r.URL = l.p.URL
	r.Mode = "closed"
	if l.p.Rate > 0 {
		r.Mode = "open"
	}
	r.Connections = l.p.Connections
	if l.p.Protocol != HTTP1 {
		r.Protocol, r.Streams = l.p.Protocol, l.p.streams
	}
	r.TargetRate = l.p.Rate
	r.Duration = now.Sub(l.start)
	if r.Duration > 0 {
		r.RPS = float64(r.Completed) / r.Duration.Seconds()
	}
	return r
}

// unsent counts the requests of an open loop that were due by the end of
// the run (or of its Duration, or shortly before a stop) and were neither
// sent nor expired.
func (l *Load) unsent(end time.Time, r *Report) int64 {
	if l.p.Duration > 0 {
		end = minTime(end, l.start.Add(l.p.Duration))
	}
	if at := l.stoppedAt.Load(); at != 0 {
		// Stopped: a request intended within the last lateAfter before the
		// stop was not late yet, so it is not counted as unsent.
		end = minTime(end, time.Unix(0, at).Add(-lateAfter(1/l.p.Rate)))
	}
	due := min(l.p.limit, dueBy(end.Sub(l.start), l.p.Rate))
	return max(0, due-r.Sent-r.Expired)
}

// Open-loop schedule. Request k is intended at start + k/rate.

// intendedAt returns when request k is intended, relative to the start.
func intendedAt(k int64, interval float64) time.Duration {
	return time.Duration(float64(k) * interval * float64(time.Second))
}

// dueBy returns how many requests are intended at or before elapsed.
func dueBy(elapsed time.Duration, rate float64) int64 {
	if elapsed < 0 {
		return 0
	}
	return int64(math.Floor(elapsed.Seconds()*rate)) + 1
}

// firstUnexpired returns the index of the first request intended no more
// than timeout before elapsed.
func firstUnexpired(elapsed, timeout time.Duration, rate float64) int64 {
	x := (elapsed - timeout).Seconds() * rate
	if x <= 0 {
		return 0
	}
	return int64(math.Ceil(x))
}

// lateAfter is how long after its intended time a request may be sent
// without counting as late: one interval, and at least a millisecond for the
// timer resolution of the operating system.
func lateAfter(interval float64) time.Duration {
	return max(time.Millisecond, time.Duration(interval*float64(time.Second)))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
