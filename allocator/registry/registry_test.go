package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/zktest"
)

func TestDecodeAssignment(t *testing.T) {
	ok := `{"deployment":"d1","kind":"es","generation":"blue","memory_bytes":1073741824,"spec":{"version":"8.1.0"}}`
	a, err := DecodeAssignment([]byte(ok))
	if err != nil || a.Deployment != "d1" || a.MemoryBytes != 1<<30 || string(a.Spec) != `{"version":"8.1.0"}` {
		t.Fatalf("%+v, %v", a, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"deployment":"d1","kind":"es","memory_bytes":1073741824}`, `generation ""`},
		{`{"deployment":"d/1","kind":"es","generation":"b","memory_bytes":1073741824}`, `deployment "d/1"`},
		{`{"deployment":"d1","kind":"es","generation":"b","memory_bytes":1024}`, "memory_bytes 1024"},
		{`{"deployment":"d1","kind":"es","generation":"b","memory_bytes":1073741824,"cpu":2}`, `unknown field "cpu"`},
		{`{"deployment":"d1","kind":"es","generation":"b","memory_bytes":1073741824}{}`, "data after"},
		{`{"deployment":"d1","kind":"es","generation":"b","memory_bytes":"1G"}`, "memory_bytes"},
		{`not json`, "invalid"},
		{`{"deployment":"d1","kind":"es","generation":"b","memory_bytes":1073741824,"zone":".."}`, `zone ".."`},
	} {
		_, err := DecodeAssignment([]byte(c.in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeAssignment(%s) = %v; want ErrInvalid naming %q", c.in, err, c.want)
		}
	}
}

// Assign keeps an allocator within its capacity even with writers that
// race: of many concurrent assignments that each fit alone, only as many
// as fit together are written.
func TestAssignNeverOvercommits(t *testing.T) {
	e := zktest.Start(t)
	conn := zktest.Connect(t, e.Servers(), 4*time.Second)
	r := New(conn, "/sy")
	if err := r.Register("h1", Allocator{Zone: "zone-a", Capacity: Capacity{MemoryBytes: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMaintenance("h1", true); err != nil {
		t.Fatal(err)
	}
	// Registering again keeps the operators' flag.
	if err := r.Register("h1", Allocator{Zone: "zone-a", Capacity: Capacity{MemoryBytes: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	const writers = 8 // each assigns 1 GiB: at most 4 fit
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := zktest.Connect(t, e.Servers(), 4*time.Second)
			w := New(c, "/sy")
			a := Assignment{Deployment: "d", Kind: "es", Generation: "g", MemoryBytes: 1 << 30}
			for attempt := 0; attempt < 20; attempt++ {
				errs[i] = w.Assign("h1", fmt.Sprintf("i-%d", i), a)
				if !errors.Is(errs[i], ErrConflict) {
					return
				}
			}
		}()
	}
	wg.Wait()
	written, full := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			written++
		case errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "needs"):
			full++
		default:
			t.Errorf("Assign: %v", err)
		}
	}
	v, err := r.Read("h1")
	if err != nil {
		t.Fatal(err)
	}
	if written != 4 || full != writers-4 || len(v.Assignments) != 4 || v.Used() != 4<<30 {
		t.Errorf("written %d, refused for capacity %d, stored %d using %d bytes; want 4, %d, 4, %d",
			written, full, len(v.Assignments), v.Used(), writers-4, 4<<30)
	}
	if !v.Maintenance || v.Zone != "zone-a" {
		t.Errorf("allocator node %+v", v.Allocator)
	}
	if err := r.Unassign("h1", v.InstanceIDs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := r.Assign("h1", v.InstanceIDs()[1], Assignment{Deployment: "d", Kind: "es", Generation: "g", MemoryBytes: 16 << 20}); err == nil ||
		!strings.Contains(err.Error(), "already has instance") {
		t.Errorf("a second assignment of one instance ID: %v", err)
	}
	if err := r.Unassign("h1", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unassign of nothing: %v", err)
	}
	if _, err := r.Read("h9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read of no allocator: %v", err)
	}
}

// The live node is ephemeral: it goes with the session, and a new
// session replaces one an old session left.
func TestLiveNodeFollowsTheSession(t *testing.T) {
	e := zktest.Start(t)
	c1 := zktest.Connect(t, e.Servers(), 4*time.Second)
	r1 := New(c1, "/sy")
	if err := r1.Register("h1", Allocator{Zone: "zone-a", Capacity: Capacity{MemoryBytes: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	if err := r1.SetLive("h1", Live{Addr: "a1"}); err != nil {
		t.Fatal(err)
	}
	if err := r1.SetLive("h1", Live{Addr: "a1"}); err != nil {
		t.Fatalf("SetLive again in the same session: %v", err)
	}
	c2 := zktest.Connect(t, e.Servers(), 4*time.Second)
	r2 := New(c2, "/sy")
	if err := r2.SetLive("h1", Live{Addr: "a2"}); err != nil {
		t.Fatal(err)
	}
	v, err := r2.Read("h1")
	if err != nil || v.Live == nil || v.Live.Addr != "a2" {
		t.Fatalf("live after a new session took over: %+v, %v", v.Live, err)
	}
	c2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := r1.Read("h1")
		if err == nil && v.Live == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live node still there after its session closed: %+v, %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
