package allocator

import (
	"testing"
	"time"
)

// One health or restart setting given leaves the others at their
// defaults (a flag or config key sets one field).
func TestConfigDefaultsPerField(t *testing.T) {
	base := func() Config {
		return Config{ZK: []string{"127.0.0.1:1"}, ID: "a", Zone: "z", CapacityBytes: 1 << 30, InstancesDir: t.TempDir()}
	}
	c := base()
	c.Health.Interval = 200 * time.Millisecond
	c.Restart.Backoff = 100 * time.Millisecond
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	wantH := DefaultHealth
	wantH.Interval = 200 * time.Millisecond
	wantR := DefaultRestart
	wantR.Backoff = 100 * time.Millisecond
	if c.Health != wantH || c.Restart != wantR {
		t.Errorf("health %+v, restart %+v; want %+v, %+v", c.Health, c.Restart, wantH, wantR)
	}
	// A first backoff above the default maximum raises the maximum with it.
	c = base()
	c.Restart.Backoff = time.Minute
	if err := c.setDefaults(); err != nil || c.Restart.MaxBackoff != time.Minute {
		t.Errorf("backoff 1m: max %v, %v", c.Restart.MaxBackoff, err)
	}
	// Given but inconsistent is still refused.
	c = base()
	c.Restart.Backoff, c.Restart.MaxBackoff = time.Minute, time.Second
	if err := c.setDefaults(); err == nil {
		t.Error("max backoff below the first backoff accepted")
	}
}
