package testutil

import (
	"errors"
	"testing"
	"time"
)

// pollInterval is how often Eventually and EventuallyErr check: short
// next to what tests wait for (a table applied, a connection closed, a
// process listening), long enough not to keep a CPU busy.
const pollInterval = 5 * time.Millisecond

// errNotYet is what Eventually's condition reports while it does not hold.
var errNotYet = errors.New("not yet")

// Eventually checks cond every few milliseconds until it holds, and
// returns how long that took. If cond has not held within timeout, the
// test fails (Fatalf) with "what: not within timeout". cond runs on the
// calling goroutine, so it may itself call t.Fatal.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return poll(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyErr is Eventually for a condition that can say why it does
// not hold yet: it calls f until f returns nil, and the failure names
// what and the last error f returned ("what: not within timeout: err").
func EventuallyErr(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return poll(t, timeout, what, f)
}

func poll(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		took := time.Since(start)
		if err == nil {
			return took
		}
		if took >= timeout {
			if err == errNotYet {
				t.Fatalf("%s: not within %v", what, timeout)
			} else {
				t.Fatalf("%s: not within %v: %v", what, timeout, err)
			}
			return took
		}
		time.Sleep(pollInterval)
	}
}
