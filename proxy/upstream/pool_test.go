package upstream

import "testing"

// The busy set: conns know their index, removal keeps the others' right,
// and removing a conn that is not there changes nothing.
func TestBusySet(t *testing.T) {
	p := &pool{}
	cs := make([]*conn, 5)
	for i := range cs {
		cs[i] = &conn{busyAt: -1}
		p.busyLocked(cs[i])
	}
	check := func(want ...*conn) {
		t.Helper()
		if len(p.busy) != len(want) {
			t.Fatalf("%d busy; want %d", len(p.busy), len(want))
		}
		in := map[*conn]bool{}
		for i, c := range p.busy {
			if c.busyAt != i {
				t.Errorf("conn at %d thinks it is at %d", i, c.busyAt)
			}
			in[c] = true
		}
		for _, c := range want {
			if !in[c] {
				t.Errorf("a busy conn is missing")
			}
		}
	}
	p.unbusyLocked(cs[1]) // middle
	check(cs[0], cs[2], cs[3], cs[4])
	p.unbusyLocked(cs[4]) // last (moved into the middle above)
	check(cs[0], cs[2], cs[3])
	p.unbusyLocked(cs[1]) // not there any more
	p.unbusyLocked(&conn{busyAt: 0})
	check(cs[0], cs[2], cs[3])
	if cs[1].busyAt != -1 || cs[4].busyAt != -1 {
		t.Errorf("removed conns keep an index: %d %d", cs[1].busyAt, cs[4].busyAt)
	}
	p.unbusyLocked(cs[0])
	p.unbusyLocked(cs[3])
	p.unbusyLocked(cs[2])
	check()
}
