package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

var routesCommand = &command{
	name:    "routes",
	args:    "[DEPLOYMENT]",
	summary: "what the store says (deployments, serving, instances; DEPLOYMENT: an ID or alias.kind), and which proxies applied it",
	run:     runRoutes,
}

// routesJSON is routes' -o json output.
type routesJSON struct {
	Root        string            `json:"root"`
	Version     int64             `json:"version"`
	Domain      string            `json:"domain"`
	Zones       map[string]string `json:"zones"`
	Deployments []deploymentJSON  `json:"deployments"`
	Invalid     map[string]string `json:"invalid"`
	Proxies     proxiesJSON       `json:"proxies"`
}

// proxiesJSON is what the route servers report of the proxies' applied
// tables, against the version of what routes shows (the store's, or one
// deployment's): a proxy at that version or later serves it.
type proxiesJSON struct {
	RouteServers int      `json:"route_servers"` // registered
	Version      string   `json:"version"`       // what they are compared with: the store's, or one deployment's
	Reported     int      `json:"reported"`      // live proxies the reachable ones report
	Current      int      `json:"current"`       // of them, at that version or later
	Behind       []string `json:"behind"`        // the others, "ID (at 0x…)"
	Unreachable  []string `json:"unreachable_route_servers"`
	Error        string   `json:"error,omitempty"` // the route servers could not be listed
}

type deploymentJSON struct {
	ID          string         `json:"id"`
	DisplayName string         `json:"display_name"` // "" when it has none
	Kind        string         `json:"kind"`
	Aliases     []string       `json:"aliases"`
	Allow       []string       `json:"allow"` // traffic filter; empty: any client
	Serving     map[string]int `json:"serving"`
	Instances   []instanceJSON `json:"instances"`
}

type instanceJSON struct {
	ID          string `json:"id"`
	Addr        string `json:"addr"`
	Zone        string `json:"zone"`
	Generation  string `json:"generation"`
	Maintenance bool   `json:"maintenance"`
}

func runRoutes(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() > 1 {
		return usagef("routes: unexpected argument %q", fs.Arg(1))
	}
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return routesAll(ctx, e, s)
	}
	return routesOne(ctx, e, s, fs.Arg(0))
}

// routesOne shows one deployment: it reads that deployment's znodes, the
// zones and config, and compares the proxies with the last change of what
// it shows (its znodes, the zones, the domain), so that a later change to
// another deployment does not count a proxy behind.
func routesOne(ctx context.Context, e *env, s *zkstore.Store, key string) error {
	notFound := fmt.Errorf("routes: no deployment %q in the store", strings.ToLower(key))
	id, err := e.resolve(ctx, s, key)
	if errors.Is(err, zkstore.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	snap, err := s.ReadDeployment(ctx, id)
	if errors.Is(err, zkstore.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	var ids []string
	if _, ok := snap.Deployments[id]; ok {
		ids = []string{id}
	}
	invalid := map[string]string{}
	if msg, ok := snap.Invalid[id]; ok {
		invalid[id] = msg
	}
	px := proxiesOut(ctx, e, s, snap.Version)
	if e.json() {
		out := routesOut(s.Root(), snap, ids, invalid)
		out.Proxies = px
		return writeJSON(e.stdout, out)
	}
	printRoutes(e.stdout, s.Root(), snap, ids, invalid)
	printProxies(e.stdout, px, id)
	return nil
}

// proxiesOut asks the route servers which proxies have applied version.
func proxiesOut(ctx context.Context, e *env, s *zkstore.Store, version int64) proxiesJSON {
	out := proxiesJSON{Version: zxid(version), Behind: []string{}, Unreachable: []string{}}
	v, err := observe(ctx, s, e.g.timeout)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.RouteServers, out.Reported = v.routeServers, len(v.versions)
	out.Behind = append(out.Behind, v.lagging(version)...)
	out.Current = out.Reported - len(out.Behind)
	out.Unreachable = append(out.Unreachable, v.unreachable...)
	return out
}

// printProxies says which proxies applied px.Version: the store's, or (of
// not "") that of deployment of.
func printProxies(w io.Writer, px proxiesJSON, of string) {
	fmt.Fprintln(w)
	switch {
	case px.Error != "":
		fmt.Fprintf(w, "proxies: the route servers could not be listed: %s\n", px.Error)
		return
	case px.RouteServers == 0:
		fmt.Fprintln(w, "proxies: no route servers registered")
		return
	case px.Reported == 0:
		fmt.Fprintln(w, "proxies: none reported by the route servers")
	default:
		fmt.Fprintf(w, "proxies: %d of %d applied version %s", px.Current, px.Reported, px.Version)
		if of != "" {
			fmt.Fprintf(w, " (the last change of %s, its zones and domain)", of)
		}
		if len(px.Behind) > 0 {
			fmt.Fprintf(w, "; behind: %s", strings.Join(px.Behind, ", "))
		}
		fmt.Fprintln(w)
	}
	if len(px.Unreachable) > 0 {
		fmt.Fprintf(w, "unreachable route servers: %s\n", strings.Join(px.Unreachable, ", "))
	}
}

func routesOut(root string, snap *zkstore.Snapshot, ids []string, invalid map[string]string) routesJSON {
	out := routesJSON{Root: root, Version: snap.Version, Domain: snap.Domain, Zones: map[string]string{},
		Deployments: []deploymentJSON{}, Invalid: invalid}
	for z, st := range snap.Zones {
		out.Zones[z] = st.String()
	}
	for _, id := range ids {
		out.Deployments = append(out.Deployments, deploymentOut(snap.Deployments[id]))
	}
	return out
}

// deploymentOut is a deployment as routes -o json shows it.
func deploymentOut(d *routes.DeploymentSpec) deploymentJSON {
	dj := deploymentJSON{ID: d.ID, DisplayName: d.DisplayName, Kind: d.Kind, Aliases: d.Aliases, Allow: d.Allow, Serving: d.Serving, Instances: []instanceJSON{}}
	if dj.Aliases == nil {
		dj.Aliases = []string{}
	}
	if dj.Allow == nil {
		dj.Allow = []string{}
	}
	for _, in := range d.Instances {
		dj.Instances = append(dj.Instances, instanceJSON{ID: in.ID, Addr: in.Addr, Zone: in.Zone, Generation: in.Generation, Maintenance: in.Maintenance})
	}
	return dj
}

func printRoutes(w io.Writer, root string, snap *zkstore.Snapshot, ids []string, invalid map[string]string) {
	fmt.Fprintf(w, "root %s  version %s  domain %s\n", root, zxid(snap.Version), orDash(snap.Domain))
	fmt.Fprintf(w, "zones: %s\n\n", zonesLine(snap.Zones))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, routesColumns)
	for _, id := range ids {
		writeRows(tw, snap.Deployments[id])
	}
	tw.Flush()
	if len(invalid) > 0 {
		fmt.Fprintln(w)
		for _, k := range slices.Sorted(maps.Keys(invalid)) {
			line := "invalid " + k + ": " + invalid[k]
			if _, kept := snap.Deployments[k]; kept {
				line += " (the last good version is shown)"
			}
			fmt.Fprintln(w, line)
		}
	}
}

// routesColumns is the header of the routes table.
const routesColumns = "DEPLOYMENT\tNAME\tKIND\tALIASES\tALLOW\tSERVING\tINSTANCE\tZONE\tGENERATION\tMAINTENANCE\tADDR"

// writeRows writes a deployment's rows of the routes table: one per
// instance.
func writeRows(tw io.Writer, d *routes.DeploymentSpec) {
	for i, in := range d.Instances {
		if i == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t", d.ID, orDash(d.DisplayName), d.Kind, orDash(strings.Join(d.Aliases, ",")),
				allowText(d.Allow), servingText(d.Serving))
		} else {
			fmt.Fprint(tw, "\t\t\t\t\t\t")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.ID, in.Zone, in.Generation, yesNo(in.Maintenance), in.Addr)
	}
}

func zonesLine(zones map[string]routes.ZoneState) string {
	if len(zones) == 0 {
		return "none listed (all up)"
	}
	var parts []string
	for _, z := range slices.Sorted(maps.Keys(zones)) {
		parts = append(parts, z+" "+zones[z].String())
	}
	return strings.Join(parts, ", ")
}

// allowText is a traffic filter as "10.0.0.0/8,192.0.2.7", or "any"
// without one.
func allowText(allow []string) string {
	if len(allow) == 0 {
		return "any"
	}
	return strings.Join(allow, ",")
}

// servingText is a serving map as "blue=90,green=10", by generation.
func servingText(s map[string]int) string {
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s=%d", g, s[g]))
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
