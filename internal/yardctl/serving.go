package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

var cutoverCommand = &command{
	name:    "cutover",
	args:    "DEPLOYMENT --to GEN [--force] [--wait] [--auto-rollback WINDOW:RATE]",
	summary: "send all traffic to generation GEN (the others stay at weight 0)",
	flags: func(fs *flag.FlagSet) {
		fs.String("to", "", "generation to cut over to (required)")
		fs.Bool("force", false, "cut over even when no instance of GEN can serve")
		fs.String("auto-rollback", "", "WINDOW:RATE (e.g. 5m:5%): after the proxies apply the cutover, watch GEN for WINDOW and "+
			"roll back if more than RATE of the attempts to it fail (at least 20 attempts), as the proxies report; implies --wait")
	},
	budget: func(fs *flag.FlagSet) time.Duration {
		spec, err := parseRollbackSpec(flagString(fs, "auto-rollback"))
		if err != nil {
			return 0
		}
		return spec.Window
	},
	waits: true,
	run:   runCutover,
}

var weightsCommand = &command{
	name:    "weights",
	args:    "DEPLOYMENT GEN=W[,GEN=W...] [--wait]",
	summary: "split traffic between generations (unlisted ones get weight 0)",
	waits:   true,
	run:     runWeights,
}

var rollbackCommand = &command{
	name:    "rollback",
	args:    "DEPLOYMENT [--wait]",
	summary: "go back to the previous serving map",
	waits:   true,
	run:     runRollback,
}

var maintenanceCommand = &command{
	name:    "maintenance",
	args:    "DEPLOYMENT INSTANCE on|off [--wait]",
	summary: "put an instance in or out of maintenance (no new requests while on)",
	waits:   true,
	run:     runMaintenance,
}

// changeOut is the -o json output of cutover, weights, rollback and
// maintenance.
type changeOut struct {
	Deployment      string               `json:"deployment"`
	Instance        string               `json:"instance,omitempty"`
	Maintenance     *bool                `json:"maintenance,omitempty"`
	Serving         map[string]int       `json:"serving,omitempty"`
	PreviousServing map[string]int       `json:"previous_serving,omitempty"`
	Zxid            int64                `json:"zxid"`
	Wait            *cutover.WaitResult  `json:"wait,omitempty"`
	AutoRollback    *cutover.WatchResult `json:"auto_rollback,omitempty"`
}

// target is the deployment a command changes, as read before the change:
// the decisions on it are cutover.Target's.
type target struct {
	s *zkstore.Store
	cutover.Target
}

func (t *target) id() string { return t.Deployment.ID }

// load connects and reads the deployment key names (ID or alias.kind):
// that deployment's znodes and the zones, nothing else.
func load(ctx context.Context, e *env, name, key string) (*target, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	id, err := e.resolve(ctx, s, key)
	if errors.Is(err, zkstore.ErrNotFound) {
		return nil, usagef("%s: no deployment %q in the store", name, strings.ToLower(key))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d, dd, err := s.ReadSpec(ctx, id)
	if errors.Is(err, zkstore.ErrNotFound) {
		return nil, usagef("%s: no deployment %q in the store", name, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	zones, err := s.ReadZones(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &target{s: s, Target: cutover.Target{Deployment: d, PreviousServing: dd.PreviousServing, Zones: zones}}, nil
}

// resolve finds the deployment a key names (zkstore.Store.Resolve); when
// the alias index had no entry and a scan found it, it says so on stderr.
func (e *env) resolve(ctx context.Context, s *zkstore.Store, key string) (string, error) {
	r, err := s.Resolve(ctx, key)
	if err == nil && r.Scanned > 0 {
		fmt.Fprintf(e.stderr, "yardctl: note: the alias index has no entry for %q; found it by reading %d deployments "+
			"(yardctl apply writes the missing entries)\n", strings.ToLower(key), r.Scanned)
	}
	return r.ID, err
}

// writeErr is the error of a serving write: a map the deployment refuses
// is bad input.
func writeErr(name string, err error) error {
	var re *routes.Error
	if errors.As(err, &re) || errors.Is(err, zkstore.ErrNotFound) {
		return &usageError{fmt.Errorf("%s: %w", name, err)}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// setServing writes serving, says what it did, and waits if asked.
func setServing(ctx context.Context, e *env, fs *flag.FlagSet, name string, t *target, serving map[string]int) error {
	z, err := t.s.SetServing(ctx, t.id(), serving)
	if err != nil {
		return writeErr(name, err)
	}
	was := t.Deployment.Serving
	out := changeOut{Deployment: t.id(), Serving: serving, PreviousServing: was, Zxid: z}
	line := fmt.Sprintf("%s %s: serving %s (was %s), zxid %s", name, t.id(), servingText(serving), servingText(was), zxid(z))
	if maps.Equal(serving, was) {
		out.PreviousServing = t.PreviousServing
		line = fmt.Sprintf("%s %s: serving already %s, zxid %s", name, t.id(), servingText(serving), zxid(z))
	}
	return finish(ctx, e, fs, name, t.s, out, line)
}

// finish waits for the proxies if --wait, and prints the outcome.
func finish(ctx context.Context, e *env, fs *flag.FlagSet, name string, s *zkstore.Store, out changeOut, line string) error {
	if flagString(fs, "wait") == "true" {
		w, err := waitProxies(ctx, e, s, name, out.Zxid)
		if err != nil {
			return err
		}
		out.Wait = &w
		line += "; " + w.String()
	}
	if e.json() {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}

func runCutover(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return usagef("cutover: want DEPLOYMENT --to GEN, got %d arguments", fs.NArg())
	}
	gen := flagString(fs, "to")
	if gen == "" {
		return usagef("cutover: --to GEN is required")
	}
	var spec *cutover.Spec
	if arg := flagString(fs, "auto-rollback"); arg != "" {
		s, err := parseRollbackSpec(arg)
		if err != nil {
			return err
		}
		spec = &s
	}
	t, err := load(ctx, e, "cutover", fs.Arg(0))
	if err != nil {
		return err
	}
	if err := t.CanServe(gen); err != nil && flagString(fs, "force") != "true" {
		return &usageError{fmt.Errorf("cutover: %w; --force to cut over anyway", err)}
	}
	if spec != nil {
		return runCutoverWatched(ctx, e, t, gen, *spec)
	}
	return setServing(ctx, e, fs, "cutover", t, t.Cutover(gen))
}

func runWeights(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 2 {
		return usagef("weights: want DEPLOYMENT GEN=W[,GEN=W...], got %d arguments", fs.NArg())
	}
	w, err := parseWeights(fs.Arg(1))
	if err != nil {
		return err
	}
	t, err := load(ctx, e, "weights", fs.Arg(0))
	if err != nil {
		return err
	}
	serving, err := t.Weights(w)
	if err != nil {
		return &usageError{fmt.Errorf("weights: %w", err)}
	}
	return setServing(ctx, e, fs, "weights", t, serving)
}

// parseWeights parses "GEN=W,GEN=W": integers >= 0 that sum to more than 0.
func parseWeights(arg string) (map[string]int, error) {
	w := map[string]int{}
	sum := 0
	for part := range strings.SplitSeq(arg, ",") {
		g, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		g = strings.TrimSpace(g)
		if !ok || g == "" {
			return nil, usagef("weights: %q is not GEN=W", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return nil, usagef("weights: %s: weight %q is not an integer >= 0", g, v)
		}
		if n > routes.MaxWeight {
			return nil, usagef("weights: %s: weight %d is out of range 0-%d", g, n, routes.MaxWeight)
		}
		if _, dup := w[g]; dup {
			return nil, usagef("weights: generation %q is listed twice", g)
		}
		w[g] = n
		sum += n
	}
	if sum == 0 {
		return nil, usagef("weights: weights sum to 0")
	}
	return w, nil
}

func runRollback(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return usagef("rollback: want DEPLOYMENT, got %d arguments", fs.NArg())
	}
	t, err := load(ctx, e, "rollback", fs.Arg(0))
	if err != nil {
		return err
	}
	serving, err := t.Rollback()
	if err != nil {
		return &usageError{fmt.Errorf("rollback: %w", err)}
	}
	return setServing(ctx, e, fs, "rollback", t, serving)
}

func runMaintenance(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 3 {
		return usagef("maintenance: want DEPLOYMENT INSTANCE on|off, got %d arguments", fs.NArg())
	}
	inst, word := fs.Arg(1), fs.Arg(2)
	if word != "on" && word != "off" {
		return usagef("maintenance: %q is not on or off", word)
	}
	on := word == "on"
	t, err := load(ctx, e, "maintenance", fs.Arg(0))
	if err != nil {
		return err
	}
	z, err := t.s.SetMaintenance(ctx, t.id(), inst, on)
	switch {
	case errors.Is(err, zkstore.ErrNoInstance) || errors.Is(err, zkstore.ErrNotFound):
		return &usageError{fmt.Errorf("maintenance: %w", err)}
	case err != nil:
		return fmt.Errorf("maintenance: %w", err)
	}
	out := changeOut{Deployment: t.id(), Instance: inst, Maintenance: &on, Zxid: z}
	line := fmt.Sprintf("maintenance %s %s %s, zxid %s", t.id(), inst, word, zxid(z))
	return finish(ctx, e, fs, "maintenance", t.s, out, line)
}
