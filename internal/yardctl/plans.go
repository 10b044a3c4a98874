package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/routes"
)

var planCommand = &command{
	name:    "plan",
	args:    "apply -f PLAN.yaml | show DEPLOYMENT | delete DEPLOYMENT",
	summary: "a deployment's plan (desired state): apply a plan file, show a plan and its status, delete one",
	flags: func(fs *flag.FlagSet) {
		fs.String("f", "", "plan apply: the plan file (required)")
		fs.Bool("wait", false, "plan apply, plan show: wait until the constructor is done with the revision "+
			"(at most --timeout when given, else "+defaultPlanWait.String()+")")
		fs.Bool("force", false, "plan delete: delete the plan even while a change is running")
	},
	budget: func(fs *flag.FlagSet) time.Duration {
		if flagString(fs, "wait") == "true" {
			return defaultPlanWait
		}
		return 0
	},
	run: runPlan,
}

var plansCommand = &command{
	name:    "plans",
	args:    "",
	summary: "list the plans: deployment, kind, zones×per_zone, memory, strategy, revision, state, step",
	run:     runPlans,
}

// defaultPlanWait bounds plan --wait when --timeout is not given: a change
// starts and checks whole generations of instances.
const defaultPlanWait = 10 * time.Minute

// planFlags are the plan command's own flags, by the subcommands that
// take them.
var planFlags = map[string][]string{"f": {"apply"}, "wait": {"apply", "show"}, "force": {"delete"}}

func runPlan(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() == 0 {
		return usagef("plan: want apply, show or delete")
	}
	sub := fs.Arg(0)
	do := map[string]func(context.Context, *env, *flag.FlagSet) error{
		"apply": runPlanApply, "show": runPlanShow, "delete": runPlanDelete,
	}[sub]
	if do == nil {
		return usagef("plan: %q is not apply, show or delete", sub)
	}
	var bad string
	fs.Visit(func(f *flag.Flag) {
		if subs, ok := planFlags[f.Name]; ok && !slices.Contains(subs, sub) && bad == "" {
			bad = f.Name
		}
	})
	if bad != "" {
		dashes := "--"
		if len(bad) == 1 {
			dashes = "-"
		}
		return usagef("plan %s: %s%s does not apply", sub, dashes, bad)
	}
	return do(ctx, e, fs)
}

// planApplyOut is plan apply's -o json output.
type planApplyOut struct {
	Deployment string `json:"deployment"`
	Revision   int    `json:"revision"`
	Previous   int    `json:"previous_revision"`
	Created    bool   `json:"created"`
	Changed    bool   `json:"changed"`
	// Status is the revision's final status, with --wait.
	Status *plan.Status `json:"status,omitempty"`
}

// conflictAttempts is how many times a plan command reads again after
// losing a race with another writer.
const conflictAttempts = 3

func runPlanApply(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() > 1 {
		return usagef("plan apply: unexpected argument %q", fs.Arg(1))
	}
	file := flagString(fs, "f")
	if file == "" {
		return usagef("plan apply: -f PLAN.yaml is required")
	}
	// The whole file is checked before ZooKeeper is even dialed.
	p, err := plan.ParseFile(file)
	if err != nil {
		return &usageError{err}
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	s := plan.New(e.conn, e.g.root)
	var res plan.ApplyResult
	for range conflictAttempts {
		if res, err = s.Apply(p); !errors.Is(err, plan.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("plan apply: %w", err)
	}
	out := planApplyOut{Deployment: res.Deployment, Revision: res.Revision, Previous: res.Previous,
		Created: res.Created, Changed: res.Changed}
	if !e.json() {
		switch {
		case res.Created:
			fmt.Fprintf(e.stdout, "plan %s: revision %d (new)\n", res.Deployment, res.Revision)
		case res.Changed:
			fmt.Fprintf(e.stdout, "plan %s: revision %d (was %d)\n", res.Deployment, res.Revision, res.Previous)
		default:
			fmt.Fprintf(e.stdout, "plan %s: unchanged at revision %d\n", res.Deployment, res.Revision)
		}
	}
	if flagString(fs, "wait") != "true" {
		if e.json() {
			return writeJSON(e.stdout, out)
		}
		return nil
	}
	st, err := waitPlan(ctx, e, fs, s, res.Deployment, res.Revision)
	out.Status = st
	if e.json() {
		if werr := writeJSON(e.stdout, out); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// waitPlan waits until revision of deployment id's plan is done, failed
// or rolled back, saying each change of state or step on stderr with the
// time since the wait began. It returns the last status it saw for the
// revision; the error says why the revision did not end done. In the
// table format the outcome is a line on stdout.
func waitPlan(ctx context.Context, e *env, fs *flag.FlagSet, s *plan.Store, id string, revision int) (*plan.Status, error) {
	bound := defaultPlanWait
	if e.timeoutGiven {
		bound = e.g.timeout
	}
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	start := time.Now()
	st, err := s.Wait(wctx, id, revision, func(st *plan.Status) {
		fmt.Fprintf(e.stderr, "plan %s: revision %d: %s, %.1fs\n", id, revision, progressText(st), time.Since(start).Seconds())
	})
	elapsed := time.Since(start).Seconds()
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return st, fmt.Errorf("plan %s: revision %d is not done after %v: %s", id, revision, bound, progressText(st))
	case errors.Is(err, plan.ErrSuperseded):
		return st, fmt.Errorf("plan %s: revision %d was superseded by a newer revision before it finished", id, revision)
	case errors.Is(err, plan.ErrNotFound):
		return st, fmt.Errorf("plan %s: deleted while waiting for revision %d", id, revision)
	case err != nil:
		return st, fmt.Errorf("plan %s: %w", id, err)
	}
	switch st.State {
	case plan.StateFailed:
		return st, fmt.Errorf("plan %s: revision %d failed at step %s: %s", id, revision, orDash(st.Step), orDash(st.Reason))
	case plan.StateRolledBack:
		return st, fmt.Errorf("plan %s: revision %d rolled back at step %s: %s", id, revision, orDash(st.Step), orDash(st.Reason))
	}
	if !e.json() {
		fmt.Fprintf(e.stdout, "plan %s: revision %d done, generation %s, %.1fs\n", id, revision, orDash(st.Generation), elapsed)
	}
	return st, nil
}

// progressText is a status of the revision waited for: "running: place",
// or what there is without one.
func progressText(st *plan.Status) string {
	switch {
	case st == nil:
		return "waiting for the constructor"
	case st.Step == "":
		return string(st.State)
	}
	return string(st.State) + ": " + st.Step
}

// planOut is one plan in -o json: the plan, its revision and its status.
type planOut struct {
	Deployment string       `json:"deployment"`
	Revision   int          `json:"revision"`
	Plan       *plan.Plan   `json:"plan"`
	Status     *plan.Status `json:"status"`
	Invalid    string       `json:"invalid,omitempty"`
}

func recordOut(r *plan.Record) planOut {
	return planOut{Deployment: r.Deployment, Revision: r.Revision, Plan: r.Plan, Status: r.Status, Invalid: r.Invalid}
}

// planID checks the DEPLOYMENT argument of a plan subcommand.
func planID(fs *flag.FlagSet, sub string) (string, error) {
	if fs.NArg() != 2 {
		return "", usagef("plan %s: want DEPLOYMENT, got %d arguments", sub, fs.NArg()-1)
	}
	id := fs.Arg(1)
	if !routes.IsDeploymentID(id) {
		return "", usagef("plan %s: %q is not a deployment ID (%d to %d lowercase hex digits)", sub, id, routes.MinIDLen, routes.MaxIDLen)
	}
	return id, nil
}

func runPlanShow(ctx context.Context, e *env, fs *flag.FlagSet) error {
	id, err := planID(fs, "show")
	if err != nil {
		return err
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	s := plan.New(e.conn, e.g.root)
	r, err := s.Read(id)
	if errors.Is(err, plan.ErrNotFound) {
		return usagef("plan show: no plan for deployment %s", id)
	}
	if err != nil {
		return fmt.Errorf("plan show: %w", err)
	}
	var werr error
	if flagString(fs, "wait") == "true" {
		_, werr = waitPlan(ctx, e, fs, s, id, r.Revision)
		if now, err := s.Read(id); err == nil && now.Revision == r.Revision {
			r = now
		}
	}
	if e.json() {
		if err := writeJSON(e.stdout, recordOut(r)); err != nil && werr == nil {
			werr = err
		}
		return werr
	}
	printPlan(e.stdout, r)
	return werr
}

// printPlan writes a plan and its status as text.
func printPlan(w io.Writer, r *plan.Record) {
	p := r.Plan
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "plan %s, revision %d\n", r.Deployment, r.Revision)
	fmt.Fprintf(tw, "  kind\t%s\n", p.Kind)
	fmt.Fprintf(tw, "  display name\t%s\n", orDash(p.DisplayName))
	fmt.Fprintf(tw, "  aliases\t%s\n", orDash(strings.Join(p.Aliases, ",")))
	fmt.Fprintf(tw, "  allow\t%s\n", allowText(p.Allow))
	fmt.Fprintf(tw, "  instances\t%d zones × %d per zone = %d, %s each\n", p.Zones, p.PerZone, p.Instances(), bytesText(p.MemoryBytes))
	fmt.Fprintf(tw, "  strategy\t%s\n", p.Strategy)
	fmt.Fprintf(tw, "  spec\t%s\n", orDash(string(p.Spec)))
	st := r.Status
	switch {
	case st == nil:
		fmt.Fprintf(tw, "status: none yet (the constructor has not taken the plan up)\n")
		tw.Flush()
		return
	case st.Revision != r.Revision:
		fmt.Fprintf(tw, "status: %s, of revision %d (revision %d not taken up yet)\n", progressText(st), st.Revision, r.Revision)
	default:
		fmt.Fprintf(tw, "status: %s\n", progressText(st))
	}
	fmt.Fprintf(tw, "  generation\t%s\n", orDash(st.Generation))
	fmt.Fprintf(tw, "  started\t%s\n", timeText(st.StartedAt))
	fmt.Fprintf(tw, "  updated\t%s\n", timeText(st.UpdatedAt))
	fmt.Fprintf(tw, "  reason\t%s\n", orDash(st.Reason))
	tw.Flush()
	if len(st.Instances) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE\tALLOCATOR\tZONE\tSTATE")
		for _, in := range slices.Sorted(maps.Keys(st.Instances)) {
			ip := st.Instances[in]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", in, orDash(ip.Allocator), orDash(ip.Zone), orDash(ip.State))
		}
		tw.Flush()
	}
	if len(st.History) > 0 {
		fmt.Fprintln(w, "history:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  AT\tREVISION\tSTATE\tSTEP\tREASON")
		for _, h := range st.History {
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", timeText(h.At), h.Revision, h.State, orDash(h.Step), orDash(h.Reason))
		}
		tw.Flush()
	}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runPlanDelete(ctx context.Context, e *env, fs *flag.FlagSet) error {
	id, err := planID(fs, "delete")
	if err != nil {
		return err
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	s := plan.New(e.conn, e.g.root)
	var r *plan.Record
	for range conflictAttempts {
		// Each attempt reads again: the status may say running now.
		r, err = s.Delete(id, plan.DeleteOptions{Force: flagString(fs, "force") == "true"})
		if !errors.Is(err, plan.ErrConflict) {
			break
		}
	}
	switch {
	case errors.Is(err, plan.ErrNotFound):
		return usagef("plan delete: no plan for deployment %s", id)
	case errors.Is(err, plan.ErrRunning):
		return usagef("plan delete: %s: revision %d is running (step %s); --force to delete it anyway",
			id, r.Status.Revision, orDash(r.Status.Step))
	case err != nil:
		return fmt.Errorf("plan delete: %w", err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"deployment": id, "deleted": true, "revision": r.Revision})
	}
	fmt.Fprintf(e.stdout, "plan %s: deleted at revision %d\n", id, r.Revision)
	return nil
}

func runPlans(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 0 {
		return usagef("plans: unexpected argument %q", fs.Arg(0))
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	recs, err := plan.New(e.conn, e.g.root).List()
	if err != nil {
		return fmt.Errorf("plans: %w", err)
	}
	if e.json() {
		outs := make([]planOut, 0, len(recs))
		for _, r := range recs {
			outs = append(outs, recordOut(r))
		}
		return writeJSON(e.stdout, outs)
	}
	if len(recs) == 0 {
		fmt.Fprintln(e.stdout, "no plans")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tKIND\tZONES×PER_ZONE\tMEMORY\tSTRATEGY\tREVISION\tSTATE\tSTEP")
	var invalid []*plan.Record
	for _, r := range recs {
		if r.Plan == nil {
			invalid = append(invalid, r)
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tinvalid\t-\n", r.Deployment)
			continue
		}
		p, state, step := r.Plan, "-", "-"
		if st := r.Status; st != nil {
			state, step = string(st.State), orDash(st.Step)
			if st.Revision != r.Revision {
				state += " (revision " + strconv.Itoa(st.Revision) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d×%d\t%s\t%s\t%d\t%s\t%s\n", r.Deployment, p.Kind, p.Zones, p.PerZone,
			bytesText(p.MemoryBytes), p.Strategy, r.Revision, state, step)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range invalid {
		fmt.Fprintf(e.stdout, "%s: %s\n", r.Deployment, r.Invalid)
	}
	return nil
}
