package yardctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/internal/testing/zktest"
)

// yardctl allocators lists what the allocators registered, with the
// memory their assignments use; allocator maintenance sets the flag,
// which an allocator registering again keeps.
func TestAllocatorsAndMaintenance(t *testing.T) {
	e, flags := zkFlags(t)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	reg := registry.New(conn, "/yard")
	if err := reg.Register("host-1", registry.Allocator{Zone: "zone-a", Capacity: registry.Capacity{MemoryBytes: 8 << 30}}); err != nil {
		t.Fatal(err)
	}
	if err := reg.SetLive("host-1", registry.Live{Addr: "127.0.0.1:9290", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("host-2", registry.Allocator{Zone: "zone-b", Capacity: registry.Capacity{MemoryBytes: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	for id, mem := range map[string]int64{"i-1": 1 << 30, "i-2": 512 << 20} {
		if err := reg.Assign("host-1", id, registry.Assignment{Deployment: "d1", Kind: "es", Generation: "blue", MemoryBytes: mem}); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.PutStatus("host-1", "i-1", registry.Status{State: registry.StateRunning, Addr: "127.0.0.1:20000", Pid: 42}); err != nil {
		t.Fatal(err)
	}
	// Past the capacity: refused, nothing written.
	if err := reg.Assign("host-2", "big", registry.Assignment{Deployment: "d1", Kind: "es", Generation: "blue", MemoryBytes: 5 << 30}); err == nil {
		t.Error("an assignment past the capacity was written")
	}

	out := yardOK(t, with(flags, "allocators")...)
	for _, want := range []string{
		"ALLOCATOR  ZONE    CAPACITY  USED     FREE     INSTANCES     LIVE  MAINTENANCE",
		"host-1     zone-a  8 GiB     1.5 GiB  6.5 GiB  2, 1 running  yes   off",
		"host-2     zone-b  4 GiB     0 B      4 GiB    0             no    off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("allocators lacks %q:\n%s", want, out)
		}
	}

	yardOK(t, with(flags, "allocator", "maintenance", "host-2", "on")...)
	var list []allocatorOut
	if err := json.Unmarshal([]byte(yardOK(t, with(flags, "-o", "json", "allocators")...)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !list[1].Maintenance || list[0].Maintenance || list[0].Used != 1536<<20 ||
		list[0].Instances["i-1"].Status == nil || list[0].Instances["i-1"].Status.Pid != 42 || list[0].Live == nil {
		t.Errorf("json: %+v", list)
	}
	yardOK(t, with(flags, "allocator", "vacate", "host-1")...)
	if v, err := reg.Read("host-1"); err != nil || !v.Vacate || !v.Maintenance {
		t.Errorf("after vacate: %+v, %v", v, err)
	}
	yardOK(t, with(flags, "allocator", "maintenance", "host-1", "off")...)
	if v, err := reg.Read("host-1"); err != nil || v.Vacate || v.Maintenance {
		t.Errorf("after maintenance off: %+v, %v", v, err)
	}
	// The allocator registering again (a restart) keeps the flag.
	if err := reg.Register("host-2", registry.Allocator{Zone: "zone-b", Capacity: registry.Capacity{MemoryBytes: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	if v, err := reg.Read("host-2"); err != nil || !v.Maintenance {
		t.Errorf("after registering again: %+v, %v", v, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"allocator", "maintenance", "nope", "on"}, `yardctl: allocator maintenance: no allocator "nope"`},
		{[]string{"allocator", "maintenance", "host-1", "maybe"}, `yardctl: allocator maintenance: "maybe" is not on or off`},
		{[]string{"allocator", "drain", "host-1"}, "yardctl: allocator: want maintenance ALLOCATOR on|off, or vacate ALLOCATOR"},
		{[]string{"allocator", "vacate", "nope"}, `yardctl: allocator vacate: no allocator "nope"`},
		{[]string{"allocators", "x"}, `yardctl: allocators: unexpected argument "x"`},
	} {
		_, errOut, code := yard(t, with(flags, c.args...)...)
		if code != 2 || errOut != c.want+"\n" {
			t.Errorf("yardctl %q: exit %d, stderr %q; want 2, %q", c.args, code, errOut, c.want)
		}
	}
}
