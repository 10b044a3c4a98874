package zones

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// RunChecks runs active health checks until ctx ends, then returns nil.
// It checks every instance of the latest prepared table and follows new
// tables as Prepare gets them. It returns at once, with nil, when
// Check.Path is "", and with an error wrapping ErrConfig when the config
// is invalid. Run it once per Balancer.
//
// When it returns, the active state of every instance goes back to
// unknown (healthy), so that no instance stays marked unhealthy by checks
// that no longer run.
func (b *Balancer) RunChecks(ctx context.Context) error {
	k := b.cfg.Check
	if k.Path == "" {
		return nil
	}
	if err := b.cfg.Validate(); err != nil {
		return err
	}
	c := &checker{
		b:   b,
		sem: semaphore.NewWeighted(int64(k.Concurrency)),
		client: &http.Client{
			Timeout: k.Timeout,
			Transport: &http.Transport{
				DialContext:           (&net.Dialer{Timeout: k.Timeout}).DialContext,
				MaxIdleConnsPerHost:   1,
				IdleConnTimeout:       2*k.Interval + time.Second,
				ResponseHeaderTimeout: k.Timeout,
				DisableCompression:    true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		running: map[*instState]context.CancelFunc{},
	}
	defer c.client.CloseIdleConnections()
	for {
		c.reconcile(ctx)
		select {
		case <-ctx.Done():
			c.stopAll()
			return nil
		case <-b.changed:
		}
	}
}

// checker runs one goroutine per instance of the table; the semaphore
// bounds how many checks are in flight.
type checker struct {
	b       *Balancer
	sem     *semaphore.Weighted
	client  *http.Client
	wg      sync.WaitGroup
	running map[*instState]context.CancelFunc
}

// reconcile starts checking the instances of the current table that are
// not checked yet and stops checking those no longer in it.
func (c *checker) reconcile(ctx context.Context) {
	s := c.b.snap.Load()
	if s == nil {
		return
	}
	removed := false
	for st, cancel := range c.running {
		if e := s.entry(st.key); e == nil || c.b.stateOf(e) != st {
			cancel()
			delete(c.running, st)
			removed = true
		}
	}
	for e := range s.byKey.All() {
		st := c.b.stateOf(e)
		if _, ok := c.running[st]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		c.running[st] = cancel
		c.wg.Add(1)
		go c.loop(cctx, st)
	}
	if removed {
		c.client.CloseIdleConnections()
	}
}

func (c *checker) stopAll() {
	for st, cancel := range c.running {
		cancel()
		delete(c.running, st)
	}
	c.wg.Wait()
	if s := c.b.snap.Load(); s != nil {
		for e := range s.byKey.All() {
			st := e.st.Load()
			if st == nil {
				continue // never checked
			}
			if st.check.Swap(checkUnknown) == checkUnhealthy {
				c.b.invalidate(st)
			}
			st.checkStreak.Store(0)
		}
	}
}

// loop checks one instance every Interval ±10% until ctx ends. The first
// check comes after a random part of the interval, so that the checks of
// a new table spread out.
func (c *checker) loop(ctx context.Context, st *instState) {
	defer c.wg.Done()
	iv := c.b.cfg.Check.Interval
	t := time.NewTimer(time.Duration(c.b.cfg.Rand() % uint64(iv)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.sem.Acquire(ctx, 1); err != nil {
			return
		}
		ok, detail := c.probe(ctx, st.key.addr)
		c.sem.Release(1)
		if ctx.Err() != nil {
			return // stopped, not a result
		}
		c.b.checked(st, ok, detail, c.b.now())
		// ±10%: 0.9 to 1.1 times the interval.
		t.Reset(iv*9/10 + time.Duration(c.b.cfg.Rand()%uint64(iv/5+1)))
	}
}

// probe sends one check to addr: it passes with a 2xx or 3xx answer.
func (c *checker) probe(ctx context.Context, addr string) (ok bool, detail string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.b.cfg.Check.Path, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "switchyard-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return false, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return true, ""
}
