package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/switchyard/switchyard/allocator/registry"
)

var allocatorsCommand = &command{
	name:    "allocators",
	args:    "",
	summary: "list the allocators: zone, capacity, memory used and free, instances, live, maintenance",
	run:     runAllocators,
}

var allocatorCommand = &command{
	name:    "allocator",
	args:    "maintenance ALLOCATOR on|off | vacate ALLOCATOR",
	summary: "maintenance: no new placements there, its instances stay; vacate: the constructor moves its instances elsewhere",
	run:     runAllocator,
}

// allocatorOut is one allocator in -o json.
type allocatorOut struct {
	ID          string                 `json:"id"`
	Zone        string                 `json:"zone"`
	Capacity    int64                  `json:"capacity_bytes"`
	Used        int64                  `json:"used_bytes"`
	Free        int64                  `json:"free_bytes"`
	Live        *registry.Live         `json:"live"`
	Maintenance bool                   `json:"maintenance"`
	Attributes  map[string]string      `json:"attributes,omitempty"`
	Instances   map[string]instanceOut `json:"instances"`
	Invalid     map[string]string      `json:"invalid_assignments,omitempty"`
}

type instanceOut struct {
	registry.Assignment
	Status *registry.Status `json:"status"`
}

func runAllocators(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() != 0 {
		return usagef("allocators: unexpected argument %q", fs.Arg(0))
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	views, err := registry.New(e.conn, e.g.root).List()
	if err != nil {
		return fmt.Errorf("allocators: %w", err)
	}
	outs := make([]allocatorOut, 0, len(views))
	for _, v := range views {
		o := allocatorOut{ID: v.ID, Zone: v.Zone, Capacity: v.Capacity.MemoryBytes, Used: v.Used(),
			Live: v.Live, Maintenance: v.Maintenance, Attributes: v.Attributes,
			Instances: map[string]instanceOut{}, Invalid: v.Invalid}
		o.Free = o.Capacity - o.Used
		for id, a := range v.Assignments {
			o.Instances[id] = instanceOut{Assignment: *a, Status: v.Statuses[id]}
		}
		outs = append(outs, o)
	}
	if e.json() {
		return writeJSON(e.stdout, outs)
	}
	if len(outs) == 0 {
		fmt.Fprintln(e.stdout, "no allocators")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALLOCATOR\tZONE\tCAPACITY\tUSED\tFREE\tINSTANCES\tLIVE\tMAINTENANCE")
	for _, o := range outs {
		n := strconv.Itoa(len(o.Instances))
		if bad := len(o.Invalid); bad > 0 {
			n += fmt.Sprintf(" (+%d invalid)", bad)
		}
		running := 0
		for _, in := range o.Instances {
			if in.Status != nil && in.Status.State == registry.StateRunning {
				running++
			}
		}
		if len(o.Instances) > 0 {
			n += fmt.Sprintf(", %d running", running)
		}
		live := "no"
		if o.Live != nil {
			live = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Zone, bytesText(o.Capacity), bytesText(o.Used),
			bytesText(o.Free), n, live, onOff(o.Maintenance))
	}
	return tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// bytesText writes n in the largest binary unit that keeps one decimal.
func bytesText(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for i < len(units)-1 && (f >= 1024 || f <= -1024) {
		f /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + " B"
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + units[i]
}

func runAllocator(ctx context.Context, e *env, fs *flag.FlagSet) error {
	if fs.NArg() == 2 && fs.Arg(0) == "vacate" {
		return runVacate(ctx, e, fs.Arg(1))
	}
	if fs.NArg() != 3 || fs.Arg(0) != "maintenance" {
		return usagef("allocator: want maintenance ALLOCATOR on|off, or vacate ALLOCATOR")
	}
	id, word := fs.Arg(1), fs.Arg(2)
	var on bool
	switch word {
	case "on":
		on = true
	case "off":
	default:
		return usagef("allocator maintenance: %q is not on or off", word)
	}
	if err := registry.CheckName("allocator", id); err != nil {
		return &usageError{fmt.Errorf("allocator maintenance: %w", err)}
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	err := registry.New(e.conn, e.g.root).SetMaintenance(id, on)
	if errors.Is(err, registry.ErrNotFound) {
		return &usageError{fmt.Errorf("allocator maintenance: no allocator %q", id)}
	}
	if err != nil {
		return fmt.Errorf("allocator maintenance: %w", err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"allocator": id, "maintenance": on})
	}
	fmt.Fprintf(e.stdout, "allocator %s: maintenance %s\n", id, word)
	return nil
}

// runVacate asks the constructor to move every instance off an allocator
// (and stops new placements there).
func runVacate(ctx context.Context, e *env, id string) error {
	if err := registry.CheckName("allocator", id); err != nil {
		return &usageError{fmt.Errorf("allocator vacate: %w", err)}
	}
	if _, err := e.connect(ctx); err != nil {
		return err
	}
	err := registry.New(e.conn, e.g.root).SetVacate(id)
	if errors.Is(err, registry.ErrNotFound) {
		return &usageError{fmt.Errorf("allocator vacate: no allocator %q", id)}
	}
	if err != nil {
		return fmt.Errorf("allocator vacate: %w", err)
	}
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"allocator": id, "vacate": true, "maintenance": true})
	}
	fmt.Fprintf(e.stdout, "allocator %s: vacating (maintenance on); the constructor moves its instances, then \"allocator maintenance %s off\" opens it again\n", id, id)
	return nil
}
