package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// A role's parts run at once: when one fails, the others stop and Run
// returns its error, instead of running on without it.
func TestRouteServerStopsWhenAPartFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		o    RouteServerOptions
		want string // a part of the error
	}{
		// The HTTP server is up; the watcher refuses its configuration.
		{"watcher fails", RouteServerOptions{Listen: "127.0.0.1:0"}, "zkstore: watcher: no servers"},
		// The HTTP server cannot listen; the watcher, which would wait for
		// an unreachable ZooKeeper, is never started.
		{"server fails", RouteServerOptions{Listen: busy.Addr().String(), ZK: []string{"127.0.0.1:1"}}, "address already in use"},
	} {
		o := tc.o
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		done := make(chan error, 1)
		go func() { done <- o.Run(context.Background()) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Run returned %v; want an error with %q", tc.name, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Run still running 10s after a part failed", tc.name)
		}
	}
}
