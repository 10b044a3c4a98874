// Package demo runs the quick start: demo instances of two deployments in
// two zones, a routes file that describes them, and a banner of commands that
// reach them through a proxy that the caller runs.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of Options.
const (
	DefaultListen      = "127.0.0.1:9200"
	DefaultAdminListen = "127.0.0.1:9244"
)

// Options configures Run.
type Options struct {
	// Stdout receives the banner. Nil discards it.
	Stdout io.Writer
	// Listen is the proxy's client listener. Default DefaultListen.
	Listen string
	// AdminListen is the proxy's admin listener. Default DefaultAdminListen.
	AdminListen string
	// Proxy runs a proxy as described by its argument until ctx is done,
	// then drains and returns nil; it returns an error if the proxy cannot
	// start. Required.
	Proxy func(ctx context.Context, p Proxy) error
}

// Proxy is what Run asks Options.Proxy to run.
type Proxy struct {
	RoutesFile  string
	Listen      string
	AdminListen string
	// DrainDelay and ShutdownTimeout are short: nothing balances in front
	// of a demo proxy.
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	// Ready must be called once, when the listeners are bound, with the
	// addresses they got (host:port). It prints the banner.
	Ready func(listen, admin string)
}

// Run starts the demo fleet, runs the proxy over it with opts.Proxy until
// ctx is done, then stops the fleet and removes its routes file. It returns
// nil after a clean stop.
func Run(ctx context.Context, opts Options) error {
	if opts.Proxy == nil {
		return errors.New("demo: Options.Proxy is nil")
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.AdminListen == "" {
		opts.AdminListen = DefaultAdminListen
	}
	fleet, err := Start(Layout())
	if err != nil {
		return err
	}
	// The proxy and the fleet run as one: an instance that stops serving
	// ends the proxy too, and the first failure is the demo's.
	g, gctx := errgroup.WithContext(ctx)
	gctx, stop := context.WithCancel(gctx)
	defer stop()
	g.Go(func() error {
		defer stop() // the proxy is gone: so is the demo
		return opts.Proxy(gctx, Proxy{
			RoutesFile:      fleet.RoutesFile,
			Listen:          opts.Listen,
			AdminListen:     opts.AdminListen,
			DrainDelay:      250 * time.Millisecond,
			ShutdownTimeout: 2 * time.Second,
			Ready: func(listen, admin string) {
				fleet.WriteBanner(opts.Stdout, listen, admin)
			},
		})
	})
	g.Go(func() error { return fleet.Wait(gctx) })
	err = g.Wait()
	return errors.Join(err, fleet.Close())
}

// WriteBanner prints the fleet and curl commands that reach it through a
// proxy listening on listen, with its admin listener on admin ("-" if
// disabled). Every curl line works as printed, without DNS.
func (f *Fleet) WriteBanner(w io.Writer, listen, admin string) {
	base := "http://" + dialable(listen)
	fmt.Fprintf(w, "Switchyard demo: proxy on %s", base)
	if admin != "-" && admin != "" {
		fmt.Fprintf(w, ", admin on http://%s", dialable(admin))
	}
	fmt.Fprintf(w, "\nroutes file: %s\n\n", f.RoutesFile)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEPLOYMENT\tKIND\tALIAS\tINSTANCES")
	for _, d := range f.Deployments {
		var ins []string
		for _, in := range d.Instances {
			ins = append(ins, fmt.Sprintf("%s (%s, %s)", in.ID, in.Zone, in.Addr))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.ID, d.Kind, d.Alias, strings.Join(ins, ", "))
	}
	tw.Flush()

	es, kb := f.Deployments[0], f.Deployments[len(f.Deployments)-1]
	fmt.Fprintf(w, "\nTry:\n")
	fmt.Fprintf(w, "  # route by header (deployment ID)\n")
	fmt.Fprintf(w, "  curl -s -H 'X-Found-Cluster: %s' %s/\n", es.ID, base)
	fmt.Fprintf(w, "  # route by Host name (ID, then alias)\n")
	fmt.Fprintf(w, "  curl -s -H 'Host: %s.%s' %s/\n", es.ID, Domain, base)
	fmt.Fprintf(w, "  curl -s -H 'Host: %s.%s.%s' %s/\n", es.Alias, es.Kind, Domain, base)
	fmt.Fprintf(w, "  curl -s -H 'Host: %s.%s.%s' %s/app/home\n", kb.Alias, kb.Kind, Domain, base)
	fmt.Fprintf(w, "  # a request body is echoed back\n")
	fmt.Fprintf(w, "  curl -s -H 'X-Found-Cluster: %s.%s' -H 'Content-Type: application/json' -d '{\"hello\":\"switchyard\"}' %s/_echo\n",
		es.Alias, es.Kind, base)
	if admin != "-" && admin != "" {
		fmt.Fprintf(w, "  # admin: table status and metrics\n")
		fmt.Fprintf(w, "  curl -s http://%s/status\n", dialable(admin))
		fmt.Fprintf(w, "  curl -s http://%s/metrics\n", dialable(admin))
	}
	fmt.Fprintf(w, "\nCtrl-C stops the proxy and the instances.\n")
}

// dialable turns a listen address into one a client can connect to: an
// unspecified host (0.0.0.0, ::, empty) becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
