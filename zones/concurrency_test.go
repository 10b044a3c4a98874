package zones

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
)

// Prepare swaps tables while 8 goroutines pick, retry and report outcomes
// (run with -race). Instances come and go; ejections end on the real clock.
func TestConcurrentPrepareAndPick(t *testing.T) {
	b := NewBalancer(Config{LocalZone: "zone-a", BaseEjection: time.Millisecond, MaxEjection: 5 * time.Millisecond, MaxEjectedPercent: 100})
	ins := layout(map[string]int{"zone-a": 3, "zone-b": 3, "zone-c": 2})
	var tables [3]*routes.Table
	for i := range tables {
		set := clone(ins)
		if i == 1 {
			set = set[:6] // zone-c leaves
		}
		tables[i], _ = oneDep(t, nil, nil, set)
	}
	var cur atomic.Pointer[routes.Table]
	cur.Store(tables[0])
	b.Prepare(tables[0])

	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopPicking := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopPicking) // should the wait for picks below fail
	var picked atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes := []Outcome{OutcomeSuccess, OutcomeStatus5xx, OutcomeSuccess, OutcomeTimeout, OutcomeReset, OutcomeSuccess}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := cur.Load().Deployments()[0]
				in := b.Pick(d)
				if in == nil {
					continue
				}
				picked.Add(1)
				b.Begin(d, in)
				o := outcomes[(i+g)%len(outcomes)]
				if o != OutcomeSuccess {
					if other := b.PickOther(d, []*routes.Instance{in}); other != nil {
						if other.ID == in.ID {
							t.Errorf("PickOther returned the tried instance")
						}
						b.Begin(d, other)
						b.End(d, other, OutcomeSuccess)
					}
				}
				b.End(d, in, o)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = allStatus(b)
				_ = b.Stats()
			}
		}
	}()
	for i := range 300 {
		tb := tables[i%len(tables)]
		b.Prepare(tb)
		cur.Store(tb)
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	// 10000 picks take milliseconds; the minute is for a stalled machine.
	testutil.Eventually(t, time.Minute, "10000 picks", func() bool { return picked.Load() >= 10000 })
	stopPicking()

	b.Prepare(tables[0])
	for _, x := range allStatus(b).Instances {
		if x.Zone != "zone-c" && x.Outstanding != 0 {
			t.Errorf("%s: outstanding %d after every request ended; want 0", x.ID, x.Outstanding)
		}
	}
	if b.Stats().Ejections == 0 {
		t.Errorf("no ejection under a third of failures")
	}
}
