package yardctl

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// flushEvery is how many deployments the routes table holds before it
// writes them: its columns are aligned within each block.
const flushEvery = 256

// routesAll shows the whole table as it is read: the deployments are
// read over the one session, 200 to a request (zkstore.Stream), and
// each is written as soon as it and those before it (by ID) are in;
// the table's version, known once every deployment is read, comes after
// them. -o json streams one JSON object of the same shape as routes
// DEPLOYMENT's, one deployment a line.
func routesAll(ctx context.Context, e *env, s *zkstore.Store) error {
	// Buffered: the table writer writes each cell on its own, which
	// unbuffered costs a write per cell. Written out every flushEvery
	// deployments, and at the end.
	w := bufio.NewWriterSize(e.stdout, 256<<10)
	defer w.Flush()
	var tw *tabwriter.Writer
	var prog *progressLine
	read, shown, started := 0, 0, false
	res, err := s.Stream(ctx, zkstore.ScanOptions{
		Head: func(h *zkstore.Snapshot, ids []string) error {
			prog, started = e.newProgress("deployments read", len(ids)), true
			if e.json() {
				zones := map[string]string{}
				for z, st := range h.Zones {
					zones[z] = st.String()
				}
				_, err := fmt.Fprintf(w, "{\"root\":%s,\"domain\":%s,\"zones\":%s,\"deployments\":[", mustJSON(s.Root()), mustJSON(h.Domain), mustJSON(zones))
				return err
			}
			fmt.Fprintf(w, "root %s  domain %s\nzones: %s\n\n", s.Root(), orDash(h.Domain), zonesLine(h.Zones))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, routesColumns)
			return nil
		},
		Deployment: func(id string, d *routes.DeploymentSpec, invalid string) error {
			read++
			prog.set(read)
			if d == nil {
				return nil
			}
			shown++
			if e.json() {
				sep := ",\n"
				if shown == 1 {
					sep = "\n"
				}
				fmt.Fprintf(w, "%s%s", sep, mustJSON(deploymentOut(d)))
			} else {
				writeRows(tw, d)
			}
			if shown%flushEvery == 0 {
				prog.clear()
				if tw != nil {
					tw.Flush()
				}
				return w.Flush()
			}
			return nil
		},
	})
	prog.clear()
	if tw != nil {
		tw.Flush()
	}
	w.Flush() // the rows, before asking the route servers
	if err != nil {
		if e.json() && started {
			fmt.Fprintln(w, "\n]}") // what was written stays valid JSON
		}
		return fmt.Errorf("routes: %w", err)
	}
	px := proxiesOut(ctx, e, s, res.Version)
	if e.json() {
		fmt.Fprintf(w, "\n],\"version\":%d,\"invalid\":%s,\"proxies\":%s}\n", res.Version, mustJSON(res.Invalid), mustJSON(px))
		return w.Flush()
	}
	fmt.Fprintf(w, "\nversion %s  %d deployments\n", zxid(res.Version), res.Deployments)
	for _, k := range slices.Sorted(maps.Keys(res.Invalid)) {
		fmt.Fprintf(w, "invalid %s: %s\n", k, res.Invalid[k])
	}
	printProxies(w, px, "")
	return w.Flush()
}

// mustJSON is v's JSON; v is one of this package's output types, which
// always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("yardctl: encoding output: " + err.Error())
	}
	return b
}
