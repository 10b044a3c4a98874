package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Domain is the route domain of the demo: deployments are reachable as
// <id>.example.test and <alias>.<kind>.example.test.
const Domain = "example.test"

// Deployment is one demo deployment and its running instances.
type Deployment struct {
	ID         string // 32 lowercase hex characters
	Kind       string // kind code: es, kb, ...
	Alias      string
	Generation string
	Instances  []Instance
}

// Instance is one running demo instance.
type Instance struct {
	ID   string
	Zone string
	Addr string // 127.0.0.1:<port>, set by Start
}

// Layout is the demo fleet: two deployments spread over zone-a and zone-b.
// Addrs are empty; Start fills them in.
func Layout() []Deployment {
	return []Deployment{
		{
			ID: "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57", Kind: "es", Alias: "prod-search", Generation: "blue",
			Instances: []Instance{
				{ID: "i-0001", Zone: "zone-a"},
				{ID: "i-0002", Zone: "zone-b"},
				{ID: "i-0003", Zone: "zone-a"},
				{ID: "i-0004", Zone: "zone-b"},
			},
		},
		{
			ID: "c41d8e2b7a9f4063b5e1d7c2a8f93b16", Kind: "kb", Alias: "prod-dash", Generation: "blue",
			Instances: []Instance{
				{ID: "i-0005", Zone: "zone-a"},
				{ID: "i-0006", Zone: "zone-b"},
			},
		},
	}
}

// Fleet is a started set of demo instances and the routes file that
// describes them. Close stops the instances and removes the file.
type Fleet struct {
	Deployments []Deployment
	// RoutesFile is the path of the routes file, in a temporary directory.
	RoutesFile string

	dir     string
	servers []*http.Server
	lns     []net.Listener
	done    chan error // each server's end, for Close
	failed  chan error // the first server that stopped unasked, for Wait
}

// Start starts every instance of deps on 127.0.0.1 with an OS-chosen port
// and writes a routes file for them. On error nothing is left running.
func Start(deps []Deployment) (f *Fleet, err error) {
	f = &Fleet{done: make(chan error, 64), failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	for di := range deps {
		d := deps[di]
		d.Instances = append([]Instance(nil), d.Instances...)
		for ii := range d.Instances {
			in := &d.Instances[ii]
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("demo: instance %s: %w", in.ID, err)
			}
			in.Addr = ln.Addr().String()
			srv := &http.Server{
				Handler:           &instanceHandler{deployment: d.ID, kind: d.Kind, generation: d.Generation, instance: in.ID, zone: in.Zone},
				ReadHeaderTimeout: 10 * time.Second,
			}
			f.servers = append(f.servers, srv)
			f.lns = append(f.lns, ln)
			id := in.ID
			go func() {
				err := srv.Serve(ln)
				if !errors.Is(err, http.ErrServerClosed) {
					select {
					case f.failed <- fmt.Errorf("demo: instance %s stopped: %w", id, err):
					default:
					}
				}
				f.done <- err
			}()
		}
		f.Deployments = append(f.Deployments, d)
	}
	f.dir, err = os.MkdirTemp("", "switchyard-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	f.RoutesFile = filepath.Join(f.dir, "routes.yaml")
	if err := os.WriteFile(f.RoutesFile, []byte(RoutesYAML(f.Deployments)), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return f, nil
}

// Wait returns when ctx is done (nil) or when an instance stopped serving
// before Close stopped it (its error), so that the demo ends with the
// reason instead of serving a fleet with a hole in it.
func (f *Fleet) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-f.failed:
		return err
	}
}

// Close stops the instances, waiting briefly for running requests, and
// removes the routes file.
func (f *Fleet) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range f.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	for range f.servers {
		if err := <-f.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	f.servers, f.lns = nil, nil
	if f.dir != "" {
		if err := os.RemoveAll(f.dir); err != nil {
			errs = append(errs, err)
		}
		f.dir = ""
	}
	return errors.Join(errs...)
}

// RoutesYAML renders deps as a routes file (the format of routesfile.Parse)
// with every generation serving at weight 100 and both zones up.
func RoutesYAML(deps []Deployment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by switchyard demo; removed when the demo stops.\n")
	fmt.Fprintf(&b, "domain: %s\n", Domain)
	zones := map[string]bool{}
	var order []string
	for _, d := range deps {
		for _, in := range d.Instances {
			if !zones[in.Zone] {
				zones[in.Zone] = true
				order = append(order, in.Zone)
			}
		}
	}
	b.WriteString("zones:\n")
	for _, z := range order {
		fmt.Fprintf(&b, "  %s: up\n", z)
	}
	b.WriteString("deployments:\n")
	for _, d := range deps {
		fmt.Fprintf(&b, "  - id: %s\n", d.ID)
		fmt.Fprintf(&b, "    kind: %s\n", d.Kind)
		fmt.Fprintf(&b, "    aliases: [%s]\n", d.Alias)
		fmt.Fprintf(&b, "    serving: {%s: 100}\n", d.Generation)
		b.WriteString("    instances:\n")
		for _, in := range d.Instances {
			fmt.Fprintf(&b, "      - {id: %s, addr: %q, zone: %s, generation: %s}\n", in.ID, in.Addr, in.Zone, d.Generation)
		}
	}
	return b.String()
}
