package yardctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/controlplane/cutover"
)

// parseRollbackSpec parses --auto-rollback WINDOW:RATE ("5m:5%" or
// "30s:0.05").
func parseRollbackSpec(arg string) (cutover.Spec, error) {
	s, err := cutover.ParseSpec(arg)
	if err != nil {
		return s, &usageError{fmt.Errorf("cutover: --auto-rollback: %w", err)}
	}
	return s, nil
}

// runCutoverWatched is cutover --auto-rollback: the baseline, then
// cutover.Runner.CutoverWatched, which writes, waits for the proxies,
// watches, and rolls back if the new generation fails. It exits 1 when it
// rolled back.
func runCutoverWatched(ctx context.Context, e *env, t *target, gen string, spec cutover.Spec) error {
	r := e.runner(t.s)
	baseline, err := r.Counts(ctx, t.id(), gen)
	if err != nil {
		return fmt.Errorf("cutover: --auto-rollback needs the proxies' reports through the route servers: %w", err)
	}
	res, err := r.CutoverWatched(ctx, &t.Target, gen, spec, baseline)
	if res == nil {
		if errors.Is(err, cutover.ErrNoChange) {
			return usagef("cutover: %s already serves %s; nothing to watch", t.id(), servingText(t.Deployment.Serving))
		}
		return writeErr("cutover", err)
	}
	watch := res.Watch
	out := changeOut{Deployment: t.id(), Serving: res.Serving, PreviousServing: res.Previous, Zxid: res.Zxid,
		Wait: &res.Wait, AutoRollback: watch}
	if e.json() {
		if werr := writeJSON(e.stdout, out); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	// Proxies that lagged past --timeout did not disarm the watch; the lag
	// is the command's error in the end, unless it rolled back.
	if res.WaitErr != nil && !watch.RolledBack {
		return res.WaitErr
	}
	if watch.RolledBack {
		return &rolledBack{fmt.Sprintf("cutover %s: rolled back to %s: generation %s: %s (over %.1f%%); %s",
			t.id(), servingText(watch.Serving), gen, watch.Observed(), 100*spec.Rate, watch.Wait)}
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "cutover %s: serving %s, zxid %s; %s; %s held for %v: %s\n",
			t.id(), servingText(res.Serving), zxid(res.Zxid), res.Wait, gen, spec.Window, watch.Observed())
	}
	return nil
}

// rolledBack is the error of a cutover that was rolled back: the command
// failed (exit 1), though everything it did worked.
type rolledBack struct{ line string }

func (r *rolledBack) Error() string { return r.line }
