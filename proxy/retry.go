package proxy

import (
	"net/http"
	"sync/atomic"

	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/switchyard/switchyard/zones"
)

// maxTries bounds the instances one request may be sent to.
const maxTries = 4

// retryable reports whether a failed exchange may be sent again to another
// instance. A request that never reached an instance (connect refused or
// timed out, no connection slot, a write that failed before any byte went
// out) always may, when its body has not been consumed. One that was sent
// may only when its method is idempotent and its body is in memory: the
// instance may have acted on it, and an idempotent request can bear that.
func retryable(err error, req *upstream.Request) bool {
	ue, ok := upstream.AsError(err)
	if !ok {
		return false
	}
	switch ue.Kind {
	case upstream.KindClientBody:
		return false // the client's fault; another instance would not help
	case upstream.KindConnectRefused, upstream.KindConnectTimeout, upstream.KindPoolTimeout:
		return true // nothing was written, a streamed body is still unread
	}
	if req.BodyStream != nil {
		return false // part of the body is gone
	}
	if !ue.Sent {
		return true
	}
	return idempotent(req.Header)
}

// reached reports whether a failed attempt may have reached the instance:
// false for a refused or timed-out connect, a full pool, or a write that
// failed before any byte went out.
func reached(err error) bool {
	ue, ok := upstream.AsError(err)
	if !ok {
		return true
	}
	switch ue.Kind {
	case upstream.KindConnectRefused, upstream.KindConnectTimeout, upstream.KindPoolTimeout:
		return false
	}
	return ue.Sent
}

// chargesBudget reports whether the retry after attempt number tries failed
// with err takes from the retry budget. A retry after an attempt the
// instance never received adds no load to the fleet, nor does a request's
// first retry after a reset (the instance dropped the request: it died, or
// closed the connection under it); the others are charged.
func chargesBudget(err error, tries int) bool {
	if !reached(err) {
		return false
	}
	ue, ok := upstream.AsError(err)
	return !(tries == 1 && ok && ue.Kind == upstream.KindReset)
}

func idempotent(h *head.Request) bool {
	switch string(h.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryBudget keeps retries from storming a failing fleet: retries in
// flight may be at most Percent of the requests in flight, or Floor,
// whichever is more.
type retryBudget struct {
	percent int64
	floor   int64
	active  atomic.Int64 // requests in flight
	retries atomic.Int64 // retries in flight
}

// acquire takes a retry from the budget; release gives it back once the
// retry attempt ended.
func (b *retryBudget) acquire() bool {
	limit := b.active.Load() * b.percent / 100
	limit = max(limit, b.floor)
	if b.retries.Add(1) > limit {
		b.retries.Add(-1)
		return false
	}
	return true
}

func (b *retryBudget) release() { b.retries.Add(-1) }

// outcome is what a failed or finished exchange says of the instance's
// health.
func outcome(err error, status int) zones.Outcome {
	if err == nil {
		return zones.OutcomeOfStatus(status)
	}
	ue, ok := upstream.AsError(err)
	if !ok {
		return zones.OutcomeReset
	}
	switch ue.Kind {
	case upstream.KindConnectRefused, upstream.KindConnectTimeout:
		return zones.OutcomeConnectError
	case upstream.KindTimeout:
		return zones.OutcomeTimeout
	case upstream.KindClientBody, upstream.KindPoolTimeout:
		// The client's doing, or the proxy's own limit: says nothing of
		// the instance.
		return zones.OutcomeCanceled
	}
	return zones.OutcomeReset
}
