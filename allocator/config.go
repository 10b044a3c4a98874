package allocator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/switchyard/switchyard/allocator/registry"
)

// Config is an allocator's configuration: the flags of "switchyard
// allocator" and the keys of its config file (docs/allocator.md).
type Config struct {
	ZK   []string // ZooKeeper servers, host:port
	Root string   // the layout's root znode; default /switchyard
	// ID names the allocator (<root>/allocators/<ID>); Zone is its zone.
	ID, Zone      string
	CapacityBytes int64
	Attributes    map[string]string
	// InstancesDir holds a directory per instance: its data, log and
	// state (for adoption by the next allocator).
	InstancesDir string
	// Host is the address instances listen on and are reached at.
	Host             string
	PortMin, PortMax int
	AdminListen      string // "" for none
	// Kinds says what to run for each kind; a kind not listed runs
	// DefaultKind, which is the built-in instance program unless set.
	Kinds       map[string]Kind
	DefaultKind Kind
	Health      HealthConfig
	Restart     RestartConfig
	// StopGrace is how long an instance being stopped has between SIGTERM
	// and SIGKILL.
	StopGrace time.Duration
	// Cgroups: give each instance a cgroup (when the host allows it).
	Cgroups bool
	// CgroupFS is where the cgroup hierarchies are mounted.
	CgroupFS       string
	SessionTimeout time.Duration
	RetryInterval  time.Duration
	Version        string
	Logger         *slog.Logger
}

// Kind is what an allocator runs for one kind of instance.
type Kind struct {
	// Command is the program and its arguments.
	Command []string `json:"command" yaml:"command"`
	// Env is added to the instance's environment, NAME=value.
	Env []string `json:"env,omitempty" yaml:"env,omitempty"`
	// HealthPath is the path of the HTTP health check.
	HealthPath string `json:"health_path,omitempty" yaml:"health_path,omitempty"`
}

// HealthConfig is the HTTP health check of every instance.
type HealthConfig struct {
	Interval time.Duration
	Timeout  time.Duration
	// Healthy checks in a row make a starting or unhealthy instance
	// running; Unhealthy failures in a row restart it.
	Healthy, Unhealthy int
	// StartTimeout is how long a started instance has to pass a check.
	StartTimeout time.Duration
}

// RestartConfig is how instances that end or fail are restarted.
type RestartConfig struct {
	// Backoff is the first wait before a restart; it doubles up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// More than CrashLoop ends within Window is a crash loop: the
	// instance is left stopped, failed.
	CrashLoop int
	Window    time.Duration
}

// Defaults of Config.
const (
	DefaultRoot      = "/switchyard"
	DefaultHost      = "127.0.0.1"
	DefaultPortMin   = 20000
	DefaultPortMax   = 29999
	DefaultHealthRel = "/_health"
)

// DefaultHealth and DefaultRestart are the defaults of Config.Health and
// Config.Restart.
var (
	DefaultHealth  = HealthConfig{Interval: time.Second, Timeout: time.Second, Healthy: 1, Unhealthy: 3, StartTimeout: 30 * time.Second}
	DefaultRestart = RestartConfig{Backoff: time.Second, MaxBackoff: 30 * time.Second, CrashLoop: 5, Window: 2 * time.Minute}
)

// setDefaults fills what is unset and checks the rest; the error names the
// setting.
func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = DefaultPortMin, DefaultPortMax
	}
	// Each setting left at zero takes its default on its own: a flag or
	// config key sets one field of these.
	orDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	orInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	h, dh := &c.Health, DefaultHealth
	orDur(&h.Interval, dh.Interval)
	orDur(&h.Timeout, dh.Timeout)
	orInt(&h.Healthy, dh.Healthy)
	orInt(&h.Unhealthy, dh.Unhealthy)
	orDur(&h.StartTimeout, dh.StartTimeout)
	rs, dr := &c.Restart, DefaultRestart
	orDur(&rs.Backoff, dr.Backoff)
	orDur(&rs.MaxBackoff, max(dr.MaxBackoff, rs.Backoff))
	orInt(&rs.CrashLoop, dr.CrashLoop)
	orDur(&rs.Window, dr.Window)
	if c.StopGrace == 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.CgroupFS == "" {
		c.CgroupFS = "/sys/fs/cgroup"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.DefaultKind.HealthPath == "" {
		c.DefaultKind.HealthPath = DefaultHealthRel
	}
	switch {
	case len(c.ZK) == 0:
		return errors.New("--zk: no ZooKeeper servers")
	case c.ID == "":
		return errors.New("--id: required")
	case c.Zone == "":
		return errors.New("--zone: required")
	case c.CapacityBytes < registry.MinMemory:
		return fmt.Errorf("--capacity %d: want at least 16MiB", c.CapacityBytes)
	case c.InstancesDir == "":
		return errors.New("--instances-dir: required")
	case c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax:
		return fmt.Errorf("--port-range %d-%d: want 1 <= first <= last <= 65535", c.PortMin, c.PortMax)
	case c.Health.Interval <= 0 || c.Health.Timeout <= 0 || c.Health.Healthy < 1 || c.Health.Unhealthy < 1:
		return errors.New("health: interval and timeout above 0, thresholds at least 1")
	case c.Restart.Backoff <= 0 || c.Restart.MaxBackoff < c.Restart.Backoff || c.Restart.CrashLoop < 1 || c.Restart.Window <= 0:
		return errors.New("restart: backoff above 0 and at most max_backoff, crash_loop at least 1, window above 0")
	}
	if err := registry.CheckName("--id", c.ID); err != nil {
		return err
	}
	if err := registry.CheckName("--zone", c.Zone); err != nil {
		return err
	}
	for k, kind := range c.Kinds {
		if len(kind.Command) == 0 {
			return fmt.Errorf("kinds.%s.command: empty", k)
		}
		if kind.HealthPath == "" {
			kind.HealthPath = DefaultHealthRel
			c.Kinds[k] = kind
		}
	}
	abs, err := filepath.Abs(c.InstancesDir)
	if err != nil {
		return err
	}
	c.InstancesDir = abs
	return nil
}

// kind is what to run for kind k.
func (c *Config) kind(k string) Kind {
	if kind, ok := c.Kinds[k]; ok {
		return kind
	}
	kind := c.DefaultKind
	if len(kind.Command) == 0 {
		self, _ := os.Executable()
		kind.Command = []string{self, "instance"}
	}
	return kind
}
