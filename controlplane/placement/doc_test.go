package placement

import (
	"os"
	"strings"
	"testing"
)

// TestDocMessages keeps the messages in docs/placement.md true: each case
// there is made here, and its message must appear in the page verbatim.
func TestDocMessages(t *testing.T) {
	page, err := os.ReadFile("../../docs/placement.md")
	if err != nil {
		t.Fatal(err)
	}
	r := Request{Deployment: "search-3", Zones: 1, PerZone: 1, MemoryBytes: 4 * GiB}
	with := func(f func(*Request)) Request { c := r; f(&c); return c }
	host := func(f func(*Allocator)) *Snapshot {
		a := al("host-1", "zone-a", 8, 0)
		f(&a)
		return snap(a)
	}
	ok := snap(al("host-1", "zone-a", 8, 0))
	cases := []struct {
		s *Snapshot
		r Request
		o Options
	}{
		{ok, with(func(r *Request) { r.Deployment = "" }), Options{}},
		{ok, with(func(r *Request) { r.Zones = 0 }), Options{}},
		{ok, with(func(r *Request) { r.PerZone = -1 }), Options{}},
		{ok, with(func(r *Request) { r.MemoryBytes = 0 }), Options{}},
		{ok, r, Options{Strategy: 7}},
		{snap(al("h0", "z", 8, 0), al("", "z", 8, 0), al("h2", "z", 8, 0), al("h3", "z", 8, 0), al("h4", "z", 8, 0)), r, Options{}},
		{host(func(a *Allocator) { a.Zone = "" }), r, Options{}},
		{host(func(a *Allocator) { a.Used = -1 }), r, Options{}},
		{snap(al("host-1", "zone-a", 8, 0), al("host-1", "zone-b", 8, 0)), r, Options{}},
		{snap(
			al("a1", "zone-a", 8, 0), al("a2", "zone-a", 8, 0),
			al("b1", "zone-b", 8, 0), al("b2", "zone-b", 8, 6), al("b3", "zone-b", 8, 7),
			al("c1", "zone-c", 8, 0), al("c2", "zone-c", 8, 0)),
			with(func(r *Request) { r.Zones, r.PerZone = 3, 2 }), Options{}},
		{snap(al("a1", "zone-a", 8, 0), al("b1", "zone-b", 8, 0)), with(func(r *Request) { r.Zones = 3 }), Options{}},
		{&Snapshot{}, with(func(r *Request) { r.Zones = 2 }), Options{}},
		{snap(
			al("a1", "zone-a", 8, 0),
			al("b1", "zone-b", 64, 0), al("b2", "zone-b", 64, 0, holds("search-3", 1)),
			al("c1", "zone-c", 64, 0, down), al("c2", "zone-c", 64, 0, down), al("c3", "zone-c", 64, 0, maint),
			al("d1", "zone-d", 64, 0, maint), al("d2", "zone-d", 64, 0), al("d3", "zone-d", 64, 0, down), al("d4", "zone-d", 3, 0)),
			with(func(r *Request) { r.Zones, r.PerZone, r.Exclude = 2, 2, []string{"d2"} }), Options{}},
	}
	for _, c := range cases {
		_, err := PlaceWith(c.s, c.r, c.o)
		if err == nil {
			t.Fatalf("%+v: placed; want an error", c.r)
		}
		if !strings.Contains(string(page), err.Error()) {
			t.Errorf("docs/placement.md lacks the message\n\t%s", err)
		}
	}
}
