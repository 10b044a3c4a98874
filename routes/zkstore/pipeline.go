package zkstore

import (
	"context"
	"sync"
)

// DefaultInFlight bounds the requests kept in flight over one session by
// a whole-table read of single requests, a partial Scan, and the
// deletions of Apply's prune, when the caller does not say. (Apply's
// batches have their own bound, DefaultBatchesInFlight.)
const DefaultInFlight = 128

// pipeline calls fetch(i) for i in [0, n), at most inFlight at a time
// (the ZooKeeper client pipelines concurrent requests over its session),
// and emit(i, v) with each result in the order of i, from the calling
// goroutine, as soon as it and every result before it are in. A result
// waiting for its turn counts as in flight. The first
// error (of fetch, emit or ctx) stops new fetches; it is returned once
// the ones in flight have ended. emit is not called after an error.
func pipeline[T any](ctx context.Context, n, inFlight int, fetch func(i int) (T, error), emit func(i int, v T) error) error {
	if inFlight <= 0 {
		inFlight = DefaultInFlight
	}
	type result struct {
		i   int
		v   T
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, inFlight)
	slots := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	go func() {
		defer func() {
			wg.Wait()
			close(results)
		}()
		for i := 0; i < n; i++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := fetch(i)
				results <- result{i, v, err}
			}()
		}
	}()
	pending := map[int]result{}
	next := 0
	var firstErr error
	for r := range results {
		if firstErr != nil {
			continue
		}
		if r.err != nil {
			firstErr = r.err
			cancel()
			continue
		}
		pending[r.i] = r
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			<-slots // a result held for its turn keeps its slot: memory stays bounded
			if err := emit(p.i, p.v); err != nil {
				firstErr = err
				cancel()
				break
			}
		}
	}
	if firstErr == nil && next < n {
		firstErr = ctx.Err()
		if firstErr == nil {
			firstErr = context.Canceled
		}
	}
	return firstErr
}
