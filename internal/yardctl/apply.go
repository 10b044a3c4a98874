package yardctl

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime/debug"

	"github.com/switchyard/switchyard/routes/routesfile"
	"github.com/switchyard/switchyard/routes/zkstore"
)

var applyCommand = &command{
	name:    "apply",
	args:    "-f ROUTES.yaml [--prune]",
	summary: "create/update deployments, instances, zones from a routes file",
	flags: func(fs *flag.FlagSet) {
		fs.String("f", "", "routes file (required)")
		fs.Bool("prune", false, "also delete the deployments and zones the file does not list")
	},
	run: runApply,
}

// applyJSON is apply's -o json output.
type applyJSON struct {
	Created   int          `json:"created"`
	Updated   int          `json:"updated"`
	Unchanged int          `json:"unchanged"`
	Deleted   int          `json:"deleted"`
	Zxid      int64        `json:"zxid"`
	Changes   []changeJSON `json:"changes"`
}

type changeJSON struct {
	Action string `json:"action"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
}

func runApply(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("apply: unexpected argument %q", fs.Arg(0))
	}
	file, prune := flagString(fs, "f"), flagString(fs, "prune") == "true"
	if file == "" {
		return usagef("apply: -f ROUTES.yaml is required")
	}
	// The whole file is checked before anything is written.
	t, err := routesfile.ParseFile(file)
	if err != nil {
		return &usageError{err}
	}
	// The table stays live while every deployment is compared with the
	// store, and with the default target the collector scans it again
	// and again: at 100 000 deployments a fourth of the comparison's
	// CPU. A larger target costs memory in proportion to the table
	// (about 90 MB at that size), not to the file.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	// The deployments are read and written in batches over the session
	// (zkstore.Apply); each change is said once it is written, in the
	// file's order (-o json: at the end, in one object).
	var prog *progressLine
	opts := zkstore.ApplyOptions{Prune: prune, Progress: func(done, total int) {
		if prog == nil {
			prog = e.newProgress("deployments applied", total)
		}
		prog.set(done)
	}}
	if !e.json() {
		opts.OnChange = func(c zkstore.Change) {
			prog.clear()
			fmt.Fprintln(e.stdout, c)
		}
	}
	res, err := s.Apply(ctx, t, opts)
	prog.clear()
	if err != nil {
		// What was written before the failure is said on stdout.
		printApply(e, res)
		return fmt.Errorf("apply: %w", err)
	}
	return printApply(e, res)
}

func printApply(e *env, res zkstore.ApplyResult) error {
	if e.json() {
		out := applyJSON{Created: res.Created, Updated: res.Updated, Unchanged: res.Unchanged, Deleted: res.Deleted,
			Zxid: res.Zxid, Changes: []changeJSON{}}
		for _, c := range res.Changes {
			out.Changes = append(out.Changes, changeJSON{Action: string(c.Action), Kind: c.Kind, Name: c.Name, Detail: c.Detail})
		}
		return writeJSON(e.stdout, out)
	}
	// The changes were said as they were written (OnChange).
	if res.Indexed > 0 {
		fmt.Fprintf(e.stdout, "alias index: wrote the missing entries of %d deployments\n", res.Indexed)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(e.stdout, "no changes (%d deployments unchanged)\n", res.Unchanged)
		return nil
	}
	fmt.Fprintf(e.stdout, "deployments: %d created, %d updated, %d unchanged, %d deleted; zxid %s\n",
		res.Created, res.Updated, res.Unchanged, res.Deleted, zxid(res.Zxid))
	return nil
}

func zxid(z int64) string { return fmt.Sprintf("0x%x", z) }

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
