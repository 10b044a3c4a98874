package zones

import (
	"math"
	"sync/atomic"

	"github.com/switchyard/switchyard/routes"
)

// Outcome is how a request to an instance ended, for passive health.
type Outcome uint8

const (
	// OutcomeSuccess: the instance answered (any status but 5xx). It
	// resets the instance's consecutive failures.
	OutcomeSuccess Outcome = iota
	// OutcomeConnectError: the connection to the instance failed.
	OutcomeConnectError
	// OutcomeReset: the instance closed or reset the connection, or sent
	// a malformed response.
	OutcomeReset
	// OutcomeTimeout: the instance did not answer in time.
	OutcomeTimeout
	// OutcomeStatus5xx: the instance itself sent a 500-599 response.
	OutcomeStatus5xx
	// OutcomeCanceled: the request ended for a reason that says nothing
	// of the instance (the client went away): it neither counts as a
	// failure nor resets the count.
	OutcomeCanceled
)

var outcomeNames = [...]string{"success", "connect_error", "reset", "timeout", "status_5xx", "canceled"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Failure reports whether o counts as a failure of the instance.
func (o Outcome) Failure() bool { return o >= OutcomeConnectError && o <= OutcomeStatus5xx }

// OutcomeOfStatus is the outcome of a response the instance sent with the
// given status code.
func OutcomeOfStatus(code int) Outcome {
	if code >= 500 && code <= 599 {
		return OutcomeStatus5xx
	}
	return OutcomeSuccess
}

// Active check states of an instance.
const (
	checkUnknown uint32 = iota // not checked yet (or checks off): healthy
	checkHealthy
	checkUnhealthy
)

var checkNames = [...]string{"unknown", "healthy", "unhealthy"}

// instKey identifies an instance across tables.
type instKey struct{ addr, id string }

func keyOf(in *routes.Instance) instKey { return instKey{in.Addr, in.ID} }

// instState is the mutable state of one instance, shared by every table
// that has the instance. All fields are atomics; the ejection fields are
// written under Balancer.ejectMu, the check fields by the instance's
// checker only.
//
// An instance has one from its first use (stateOf): at 100 000
// deployments a proxy can hold 300 000. The counts that stay small are
// 32-bit, so that it takes 80 bytes, not 96.
type instState struct {
	key instKey

	outstanding atomic.Int64
	// ejectedUntil is when the last ejection ends, Unix nanoseconds; 0
	// if never ejected. The instance is ejected while now < ejectedUntil.
	ejectedUntil atomic.Int64
	consecutive  atomic.Int32 // failures in a row, up to the threshold
	timesEjected atomic.Int32 // before decay

	check       atomic.Uint32 // checkUnknown, checkHealthy, checkUnhealthy
	checkStreak atomic.Int32  // results in a row against the current state, up to a threshold
	checkErr    atomic.Pointer[string]
	checkedAt   atomic.Int64 // Unix nanoseconds of the last result
}

func (st *instState) ejected(now int64) bool { return now < st.ejectedUntil.Load() }

func (st *instState) healthy(now int64) bool {
	return !st.ejected(now) && st.check.Load() != checkUnhealthy
}

// begin and end count outstanding requests. end never takes the count
// under zero (a request begun on a state that was forgotten and
// re-created ends on the new one).
func (st *instState) begin() { st.outstanding.Add(1) }

func (st *instState) end() {
	for {
		v := st.outstanding.Load()
		if v <= 0 || st.outstanding.CompareAndSwap(v, v-1) {
			return
		}
	}
}

// decayedTimes is the ejection count at now: one less for each base period
// the instance has been back since its last ejection ended.
func (st *instState) decayedTimes(now, base int64) int64 {
	n, until := int64(st.timesEjected.Load()), st.ejectedUntil.Load()
	if n == 0 || now <= until {
		return n
	}
	if k := (now - until) / base; k < n {
		return n - k
	}
	return 0
}

// outcome records the end of a request on e's instance.
func (b *Balancer) outcome(st *instState, o Outcome) {
	st.end()
	switch {
	case o == OutcomeSuccess:
		if st.consecutive.Load() != 0 {
			st.consecutive.Store(0)
		}
	case o.Failure() && b.cfg.ConsecutiveFailures > 0:
		if int(st.consecutive.Add(1)) >= b.cfg.ConsecutiveFailures {
			b.tryEject(st)
		}
	}
}

// tryEject ejects st's instance after a run of failures, unless it is
// ejected already or MaxEjectedPercent forbids it. Either way the run
// starts again from zero.
func (b *Balancer) tryEject(st *instState) {
	b.ejectMu.Lock()
	defer b.ejectMu.Unlock()
	if int(st.consecutive.Load()) < b.cfg.ConsecutiveFailures {
		return // a success, or another failure, got here first
	}
	st.consecutive.Store(0)
	now := b.now()
	if st.ejected(now) {
		return
	}
	e := b.snap.Load().entry(st.key)
	if e == nil || b.stateOf(e) != st {
		return // no longer in the table
	}
	for _, ds := range e.eligible().deps {
		n := 0
		for _, o := range ds.insts {
			if o.e.state().ejected(now) {
				n++
			}
		}
		if (n+1)*100 > b.cfg.MaxEjectedPercent*len(ds.insts) {
			b.stats.ejectionsSkipped.Add(1)
			return
		}
	}
	base, max := int64(b.cfg.BaseEjection), int64(b.cfg.MaxEjection)
	// The count stops growing where the cap is reached, so that it decays
	// back from there.
	times := min(st.decayedTimes(now, base)+1, (max+base-1)/base)
	d := min(base*times, max)
	st.timesEjected.Store(int32(min(times, math.MaxInt32)))
	st.ejectedUntil.Store(now + d)
	b.invalidate(st)
	b.stats.ejections.Add(1)
}

// checked records the result of an active check of st's instance and
// flips its state after enough results in a row.
func (b *Balancer) checked(st *instState, ok bool, detail string, at int64) {
	b.stats.checks.Add(1)
	if !ok {
		b.stats.checkFailures.Add(1)
	}
	if detail == "" {
		st.checkErr.Store(nil)
	} else {
		st.checkErr.Store(&detail)
	}
	st.checkedAt.Store(at)
	k := b.cfg.Check
	switch cur := st.check.Load(); {
	case cur == checkUnhealthy && !ok, cur != checkUnhealthy && ok:
		st.checkStreak.Store(0)
		if cur == checkUnknown {
			st.check.Store(checkHealthy) // routing is unchanged
		}
	case cur == checkUnhealthy: // a pass
		if int(st.checkStreak.Add(1)) >= k.HealthyThreshold {
			st.checkStreak.Store(0)
			st.check.Store(checkHealthy)
			b.invalidate(st)
			b.stats.markedHealthy.Add(1) // last: a flip counted is in effect
		}
	default: // a failure of an instance that counts as healthy
		if int(st.checkStreak.Add(1)) >= k.UnhealthyThreshold {
			st.checkStreak.Store(0)
			st.check.Store(checkUnhealthy)
			b.invalidate(st)
			b.stats.markedUnhealthy.Add(1)
		}
	}
}
