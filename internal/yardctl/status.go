package yardctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
)

var statusCommand = &command{
	name:    "status",
	args:    "",
	summary: "route servers, the proxies they serve, applied versions, zones",
	run:     runStatus,
}

// statusJSON is status' -o json output.
type statusJSON struct {
	Store        storeJSON         `json:"store"`
	RouteServers []routeServerJSON `json:"route_servers"`
}

// storeJSON is the store as status sees it without reading the
// deployments: Version is the newest table a reachable route server has
// read (0: none answered), Invalid the parts they refuse.
type storeJSON struct {
	Root        string            `json:"root"`
	Version     int64             `json:"version"`
	Deployments int               `json:"deployments"`
	Zones       map[string]string `json:"zones"`
	Invalid     map[string]string `json:"invalid"`
	Error       string            `json:"error,omitempty"`
}

type routeServerJSON struct {
	Name      string       `json:"name"`
	URL       string       `json:"url"`
	StartedAt time.Time    `json:"started_at"`
	Error     string       `json:"error,omitempty"`  // unreachable or bad answer
	Status    *wire.Status `json:"status,omitempty"` // the route server's own document
}

func runStatus(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("status: unexpected argument %q", fs.Arg(0))
	}
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	// The store's part costs the zones and the deployments container, not
	// the deployments: the version and the invalid parts are what the
	// route servers have read (below).
	out := statusJSON{Store: storeJSON{Root: s.Root(), Zones: map[string]string{}, Invalid: map[string]string{}}}
	if zones, err := s.ReadZones(ctx); err != nil {
		out.Store.Error = err.Error()
	} else {
		for z, st := range zones {
			out.Store.Zones[z] = st.String()
		}
		if out.Store.Deployments, err = s.CountDeployments(ctx); err != nil {
			out.Store.Error = err.Error()
		}
	}
	rss, err := s.RouteServers(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	out.RouteServers = fetchStatuses(ctx, rss, e.g.timeout)
	for _, rs := range out.RouteServers {
		if rs.Status != nil {
			out.Store.Version = max(out.Store.Version, int64(rs.Status.Version))
			maps.Copy(out.Store.Invalid, rs.Status.Invalid)
		}
	}
	if e.json() {
		return writeJSON(e.stdout, out)
	}
	printStatus(e.stdout, out)
	return nil
}

// fetchStatuses asks every route server for its status, all at once.
func fetchStatuses(ctx context.Context, rss []zkstore.RouteServer, timeout time.Duration) []routeServerJSON {
	out := make([]routeServerJSON, len(rss))
	client := &http.Client{Timeout: timeout}
	var wg sync.WaitGroup
	for i, rs := range rss {
		out[i] = routeServerJSON{Name: rs.Name, URL: rs.URL, StartedAt: rs.StartedAt}
		if rs.Problem != "" {
			out[i].Error = rs.Problem
			continue
		}
		wg.Add(1)
		go func(r *routeServerJSON) {
			defer wg.Done()
			st, err := cutover.FetchStatus(ctx, client, r.URL)
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.Status = st
		}(&out[i])
	}
	wg.Wait()
	return out
}

func printStatus(w io.Writer, out statusJSON) {
	st := out.Store
	if st.Error != "" {
		fmt.Fprintf(w, "store %s: %s\n", st.Root, st.Error)
	} else {
		var zones []string
		for _, z := range slices.Sorted(maps.Keys(st.Zones)) {
			zones = append(zones, z+" "+st.Zones[z])
		}
		zl := strings.Join(zones, ", ")
		if zl == "" {
			zl = "none listed (all up)"
		}
		v := zxid(st.Version)
		if st.Version == 0 {
			v = "unknown (no route server answered)"
		}
		fmt.Fprintf(w, "store %s  version %s  %d deployments  zones: %s\n", st.Root, v, st.Deployments, zl)
		for _, k := range slices.Sorted(maps.Keys(st.Invalid)) {
			fmt.Fprintf(w, "invalid %s: %s\n", k, st.Invalid[k])
		}
	}
	fmt.Fprintln(w)
	if len(out.RouteServers) == 0 {
		fmt.Fprintln(w, "no route servers registered")
		return
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE SERVER\tURL\tSTATE\tVERSION\tDEPLOYMENTS\tINVALID\tPROXIES")
	var unreachable []string
	for _, rs := range out.RouteServers {
		if rs.Status == nil {
			fmt.Fprintf(tw, "%s\t%s\tunreachable\t-\t-\t-\t-\n", rs.Name, orDash(rs.URL))
			unreachable = append(unreachable, fmt.Sprintf("route server %s (%s) is unreachable: %s", rs.Name, orDash(rs.URL), rs.Error))
			continue
		}
		s := rs.Status
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", rs.Name, rs.URL, rsState(s, st), zxid(int64(s.Version)),
			s.Deployments, len(s.Invalid), len(s.Proxies))
	}
	tw.Flush()
	for _, u := range unreachable {
		fmt.Fprintln(w, u)
	}

	var rows []string
	for _, rs := range out.RouteServers {
		if rs.Status == nil {
			continue
		}
		for _, p := range rs.Status.Proxies {
			seen := "-"
			if !p.LastSeen.IsZero() {
				seen = p.LastSeen.UTC().Format(time.RFC3339)
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", p.ID, orDash(p.Zone), rs.Name,
				zxid(int64(p.Version)), yesNo(st.Error == "" && int64(p.Version) >= st.Version), p.LagSeconds, seen))
		}
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "no proxies reported")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tZONE\tROUTE SERVER\tVERSION\tCURRENT\tLAG\tLAST SEEN")
	for _, r := range rows {
		fmt.Fprint(tw, r)
	}
	tw.Flush()
}

// rsState says whether a route server is current with the store.
func rsState(s *wire.Status, store storeJSON) string {
	switch {
	case s.Stale:
		return "stale"
	case store.Error == "" && int64(s.Version) < store.Version:
		return "behind"
	}
	return "ok"
}
