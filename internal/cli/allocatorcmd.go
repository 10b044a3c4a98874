package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/internal/cmdline"
)

// AllocatorOptions configure the allocator role ("switchyard allocator").
// Config's fields are flags and config file keys (allocatorFlags); the
// kinds come from a file of their own (--kinds-file), being structured.
type AllocatorOptions struct {
	Config    allocator.Config
	KindsFile string
	// LogLevel is the level of the operational log (--log-level).
	LogLevel slog.Level
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("invalid boolean %q", v)
	}
	*dst = b
	return nil
}

// allocatorFlags are the options of the allocator role.
var allocatorFlags = []*option[AllocatorOptions]{
	{name: "zk", arg: "HOST:PORT[,HOST:PORT]", list: true, usage: "ZooKeeper servers (required)",
		set: func(o *AllocatorOptions, v string) error { return setHosts(&o.Config.ZK, v) }},
	{name: "root", arg: "PATH", usage: "ZooKeeper root of the layout (default /switchyard)",
		set: func(o *AllocatorOptions, v string) error { return setRoot(&o.Config.Root, v) }},
	{name: "id", arg: "ID", usage: "the allocator's ID: <root>/allocators/<ID> (required)",
		set: func(o *AllocatorOptions, v string) error { o.Config.ID = v; return nil }},
	{name: "zone", arg: "ZONE", usage: "the allocator's zone (required)",
		set: func(o *AllocatorOptions, v string) error { o.Config.Zone = v; return nil }},
	{name: "capacity", arg: "SIZE", usage: "memory offered to instances, e.g. 8GiB (required)",
		set: func(o *AllocatorOptions, v string) (err error) {
			o.Config.CapacityBytes, err = parseSize(v)
			return err
		}},
	{name: "attribute", arg: "KEY=VALUE", list: true, usage: "an attribute advertised with the capacity; may be repeated",
		set: func(o *AllocatorOptions, v string) error {
			o.Config.Attributes = map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok || k == "" {
					return fmt.Errorf("invalid attribute %q (want key=value)", kv)
				}
				o.Config.Attributes[k] = val
			}
			return nil
		}},
	{name: "instances-dir", arg: "DIR", usage: "directory of the instances' data, logs and state (default /var/lib/switchyard/instances)",
		setPath: func(o *AllocatorOptions, v, dir string) error { return setPath(&o.Config.InstancesDir, v, dir) }},
	{name: "host", arg: "ADDR", usage: "address the instances listen on and are reached at (default 127.0.0.1)",
		set: func(o *AllocatorOptions, v string) error { o.Config.Host = v; return nil }},
	{name: "port-range", arg: "FIRST-LAST", usage: "ports of the instances (default 20000-29999)",
		set: func(o *AllocatorOptions, v string) error {
			lo, hi, ok := strings.Cut(v, "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
				return fmt.Errorf("invalid port range %q (want FIRST-LAST within 1-65535)", v)
			}
			o.Config.PortMin, o.Config.PortMax = a, b
			return nil
		}},
	{name: "admin-listen", arg: "ADDR", usage: "listener for /status and /metrics; - disables it (default 127.0.0.1:9290)",
		set: func(o *AllocatorOptions, v string) error { return setAddr(&o.Config.AdminListen, v, true) }},
	{name: "kinds-file", arg: "PATH", usage: "YAML file: per kind, the command, env and health_path of its instances (default: every kind runs \"switchyard instance\")",
		setPath: func(o *AllocatorOptions, v, dir string) error { return setPath(&o.KindsFile, v, dir) }},
	{name: "health-interval", arg: "DURATION", usage: "time between an instance's health checks (default 1s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Health.Interval, v) }},
	{name: "health-timeout", arg: "DURATION", usage: "a health check's time limit (default 1s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Health.Timeout, v) }},
	{name: "healthy-after", arg: "N", usage: "passed checks in a row that make a starting or unhealthy instance running (default 1)",
		set: func(o *AllocatorOptions, v string) error { return setInt(&o.Config.Health.Healthy, v) }},
	{name: "unhealthy-after", arg: "N", usage: "failed checks in a row that restart an instance (default 3)",
		set: func(o *AllocatorOptions, v string) error { return setInt(&o.Config.Health.Unhealthy, v) }},
	{name: "start-timeout", arg: "DURATION", usage: "time a started instance has to pass a check (default 30s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Health.StartTimeout, v) }},
	{name: "restart-backoff", arg: "DURATION", usage: "first wait before a restart; doubles each time (default 1s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Restart.Backoff, v) }},
	{name: "restart-max-backoff", arg: "DURATION", usage: "longest wait before a restart (default 30s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Restart.MaxBackoff, v) }},
	{name: "crash-loop", arg: "N", usage: "more than N ends within --crash-loop-window leave an instance failed (default 5)",
		set: func(o *AllocatorOptions, v string) error { return setInt(&o.Config.Restart.CrashLoop, v) }},
	{name: "crash-loop-window", arg: "DURATION", usage: "window of --crash-loop (default 2m)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.Restart.Window, v) }},
	{name: "stop-grace", arg: "DURATION", usage: "time between SIGTERM and SIGKILL for an instance being stopped (default 10s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.StopGrace, v) }},
	{name: "cgroups", usage: "give each instance a cgroup: memory limit and CPU weight (default true; needs root)",
		set: func(o *AllocatorOptions, v string) error { return setBool(&o.Config.Cgroups, v) }},
	{name: "session-timeout", arg: "DURATION", usage: "ZooKeeper session timeout (default 10s)",
		set: func(o *AllocatorOptions, v string) error { return setDuration(&o.Config.SessionTimeout, v) }},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(o *AllocatorOptions, v string) (err error) { o.LogLevel, err = parseLogLevel(v); return err }},
}

func allocatorUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard allocator --zk HOST:PORT[,..] --id ID --zone ZONE --capacity SIZE [flags]

Runs the instances assigned to this host in ZooKeeper
(<root>/allocators/<ID>/assignments), each in its own cgroup with a memory
limit of its size and a CPU weight in proportion, restarts those that end
or fail their health check, stops those no longer assigned, and reports
each one's state (<root>/allocators/<ID>/status). Losing ZooKeeper, or the
allocator's own end, stops no instance; an allocator started again adopts
the instances still running. SIGTERM or SIGINT stops it.

flags:
  --config FILE
        YAML config file
`)
	writeUsage(w, allocatorFlags)
}

func parseAllocatorArgs(args []string) (*AllocatorOptions, error) {
	o := &AllocatorOptions{LogLevel: slog.LevelInfo}
	o.Config.Cgroups = true
	o.Config.AdminListen = "127.0.0.1:9290"
	o.Config.InstancesDir = "/var/lib/switchyard/instances"
	if err := parseArgs("allocator", args, allocatorFlags, o, true); err != nil {
		return nil, err
	}
	if o.Config.AdminListen == "-" {
		o.Config.AdminListen = ""
	}
	switch {
	case len(o.Config.ZK) == 0:
		return nil, cmdline.Usagef("--zk is required")
	case o.Config.ID == "":
		return nil, cmdline.Usagef("--id is required")
	case o.Config.Zone == "":
		return nil, cmdline.Usagef("--zone is required")
	case o.Config.CapacityBytes == 0:
		return nil, cmdline.Usagef("--capacity is required")
	}
	if o.KindsFile != "" {
		kinds, err := readKinds(o.KindsFile)
		if err != nil {
			return nil, cmdline.Usagef("--kinds-file: %v", err)
		}
		o.Config.Kinds = kinds
	}
	return o, nil
}

// readKinds reads a kinds file: a mapping of kind to its command, env and
// health_path. Unknown keys are errors.
func readKinds(path string) (map[string]allocator.Kind, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var kinds map[string]allocator.Kind
	if err := dec.Decode(&kinds); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for k, kind := range kinds {
		if len(kind.Command) == 0 {
			return nil, fmt.Errorf("%s: kind %q: command is empty", path, k)
		}
	}
	return kinds, nil
}

func runAllocator(args []string, _, stderr io.Writer) error {
	o, err := parseAllocatorArgs(args)
	if err != nil {
		return err
	}
	o.Config.Logger = newLogger(stderr, o.LogLevel)
	ctx, stop := cmdline.SignalContext()
	defer stop()
	return o.Run(ctx)
}

// Run runs the allocator until ctx ends. Its instances keep running.
func (o *AllocatorOptions) Run(ctx context.Context) error {
	cfg := o.Config
	cfg.Version = versionString()
	a, err := allocator.New(cfg)
	if err != nil {
		return cmdline.Usagef("%v", err)
	}
	return a.Run(ctx)
}

// runInstanceExec is the shim between the allocator and an instance: it
// joins the instance's cgroups and executes the instance's command. Not
// for operators: the allocator runs it.
func runInstanceExec(args []string, _, _ io.Writer) error {
	if len(args) == 0 {
		return cmdline.Usagef("missing command")
	}
	return allocator.Shim(args)
}
