package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

var zoneCommand = &command{
	name:    "zone",
	args:    "ZONE up|down",
	summary: "mark a zone up or down (proxies send no new request to a zone that is down)",
	run:     runZone,
}

func runZone(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 2 {
		return usagef("zone: want ZONE up|down, got %d arguments", fs.NArg())
	}
	zone, word := fs.Arg(0), fs.Arg(1)
	var state routes.ZoneState
	switch word {
	case "up":
		state = routes.ZoneUp
	case "down":
		state = routes.ZoneDown
	default:
		return usagef("zone: state %q is not up or down", word)
	}
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	z, err := s.SetZone(ctx, zone, state)
	if errors.Is(err, zkstore.ErrInvalid) || errors.Is(err, zkstore.ErrBadName) {
		return &usageError{fmt.Errorf("zone: %w", err)}
	}
	if err != nil {
		return fmt.Errorf("zone: %w", err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"zone": zone, "state": word, "zxid": z})
	}
	fmt.Fprintf(e.stdout, "zone %s %s (zxid %s)\n", zone, word, zxid(z))
	return nil
}
