package testutil

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message instead of
// ending the test.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	const timeout = 50 * time.Millisecond
	calls := 0
	third := func() bool { calls++; return calls == 3 }
	thirdErr := func() error {
		if third() {
			return nil
		}
		return fmt.Errorf("call %d", calls)
	}
	for _, tt := range []struct {
		name      string
		wait      func(t testing.TB) time.Duration
		wantFatal string
	}{
		{"holds at the third check",
			func(t testing.TB) time.Duration { return Eventually(t, timeout, "the third call", third) }, ""},
		{"never holds",
			func(t testing.TB) time.Duration {
				return Eventually(t, timeout, "a cold day", func() bool { calls++; return false })
			}, "a cold day: not within 50ms"},
		{"err: nil at the third call",
			func(t testing.TB) time.Duration { return EventuallyErr(t, timeout, "the third call", thirdErr) }, ""},
		{"err: never nil",
			func(t testing.TB) time.Duration {
				return EventuallyErr(t, timeout, "a write", func() error { calls++; return errors.New("refused") })
			}, "a write: not within 50ms: refused"},
	} {
		calls = 0
		r := &recorder{TB: t}
		took := tt.wait(r)
		if r.fatal != tt.wantFatal {
			t.Errorf("%s: failure %q; want %q", tt.name, r.fatal, tt.wantFatal)
		}
		if tt.wantFatal == "" && calls != 3 {
			t.Errorf("%s: %d checks; want 3 (it returns once the condition holds)", tt.name, calls)
		}
		if tt.wantFatal != "" && (took < timeout || calls < 2) {
			t.Errorf("%s: gave up after %v and %d checks; want the whole %v, checked again and again", tt.name, took, calls, timeout)
		}
	}
}
