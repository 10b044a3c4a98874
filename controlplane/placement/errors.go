package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sentinel errors. Place fails with an *Error wrapping one of them.
var (
	// ErrInvalid: the request, the options or the snapshot is not valid.
	ErrInvalid = errors.New("placement: invalid input")
	// ErrNoRoom: fewer zones than wanted can take the instances.
	ErrNoRoom = errors.New("placement: no room")
)

// Error is a refused placement: one line saying why, naming the
// deployment but not the operation (callers prefix it: "place ...: ").
// It wraps ErrInvalid or ErrNoRoom.
type Error struct {
	Err        error // ErrInvalid or ErrNoRoom
	Deployment string

	// Problem says, for ErrInvalid, what is wrong, naming the field:
	// "zones 0: want at least 1".
	Problem string

	// For ErrNoRoom: Wanted zones were asked for and Have could take
	// their instances; Known zones have allocators at all; Short has
	// each zone of the snapshot that cannot take its instances, by name.
	Wanted, Have, Known int
	Short               []Shortage
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	if e.Deployment != "" {
		b.WriteString(e.Deployment)
		b.WriteString(": ")
	}
	if e.Err != ErrNoRoom {
		b.WriteString(e.Problem)
		return b.String()
	}
	switch e.Have {
	case 0:
		b.WriteString("no zone has room")
	case 1:
		b.WriteString("only 1 zone has room")
	default:
		fmt.Fprintf(&b, "only %d zones have room", e.Have)
	}
	fmt.Fprintf(&b, "; %d wanted", e.Wanted)
	for _, s := range e.Short {
		b.WriteString("; ")
		b.WriteString(s.String())
	}
	switch {
	case e.Known == 0:
		b.WriteString("; there are no allocators")
	case e.Known < e.Wanted:
		fmt.Fprintf(&b, "; allocators exist in %s only", plural(e.Known, "zone", "zones"))
	}
	return b.String()
}

// Shortage is what one zone lacks. Each allocator of the zone counts once,
// under the first of these that applies: down (not live), in maintenance,
// excluded, with an instance of the deployment; the rest are open (the
// message calls them live), and only memory decides whether they can
// take an instance.
type Shortage struct {
	Zone       string
	Deployment string
	// Fit of Want instances (PerZone) of MemoryBytes fit, each on an
	// allocator of its own.
	Fit, Want   int
	MemoryBytes int64
	// Open allocators, and the largest free memory among those of them
	// too small for an instance (0 if none is).
	Open        int
	LargestFree int64
	// Allocators ruled out for other reasons.
	Down, Maintenance, Excluded, Holding int
}

// String is the zone's part of the error's line:
//
//	zone-b: 1 of 2 instances of 4 GiB fit (largest free 2 GiB on 3 live allocators)
//	zone-c: 1 of 2 instances of 4 GiB fit (only 1 live allocator; 1 with an instance of d-1)
//	zone-d: 0 of 1 instance of 4 GiB fits (no live allocator; 2 down, 1 in maintenance)
//
// "largest free" is over the live allocators too small for an instance.
func (s Shortage) String() string {
	var b strings.Builder
	verb := "fit"
	if s.Want == 1 {
		verb = "fits"
	}
	fmt.Fprintf(&b, "%s: %d of %s of %s %s (", s.Zone, s.Fit,
		plural(s.Want, "instance", "instances"), formatBytes(s.MemoryBytes), verb)
	switch {
	case s.Open == 0:
		b.WriteString("no live allocator")
	case s.Fit == s.Open:
		fmt.Fprintf(&b, "only %s", plural(s.Open, "live allocator", "live allocators"))
	default:
		fmt.Fprintf(&b, "largest free %s on %d live %s", formatBytes(s.LargestFree), s.Open,
			noun(s.Open, "allocator", "allocators"))
	}
	var others []string
	for _, o := range []struct {
		n    int
		what string
	}{
		{s.Down, "down"}, {s.Maintenance, "in maintenance"}, {s.Excluded, "excluded"},
		{s.Holding, "with an instance of " + s.Deployment},
	} {
		if o.n > 0 {
			others = append(others, strconv.Itoa(o.n)+" "+o.what)
		}
	}
	if len(others) > 0 {
		b.WriteString("; ")
		b.WriteString(strings.Join(others, ", "))
	}
	b.WriteString(")")
	return b.String()
}

// noRoom builds the ErrNoRoom error: a second, slower pass over the
// snapshot that counts, zone by zone, why allocators were ruled out. It
// runs only when placement fails.
func noRoom(s *Snapshot, r Request, have int) *Error {
	ex := excluded(r.Exclude)
	byZone := map[string]*Shortage{}
	for i := range s.Allocators {
		a := &s.Allocators[i]
		z := byZone[a.Zone]
		if z == nil {
			z = &Shortage{Zone: a.Zone, Deployment: r.Deployment, Want: r.PerZone, MemoryBytes: r.MemoryBytes}
			byZone[a.Zone] = z
		}
		switch {
		case !a.Live:
			z.Down++
		case a.Maintenance:
			z.Maintenance++
		case ex.has(a.ID):
			z.Excluded++
		case a.Deployments[r.Deployment] > 0:
			z.Holding++
		default:
			z.Open++
			if a.free() >= r.MemoryBytes {
				z.Fit++
			} else {
				z.LargestFree = max(z.LargestFree, a.free())
			}
		}
	}
	e := &Error{Err: ErrNoRoom, Deployment: r.Deployment, Wanted: r.Zones, Have: have, Known: len(byZone)}
	for _, z := range byZone {
		if z.Fit < z.Want {
			e.Short = append(e.Short, *z)
		}
	}
	slices.SortFunc(e.Short, func(a, b Shortage) int { return cmp.Compare(a.Zone, b.Zone) })
	return e
}

// formatBytes writes a memory size as errors show it: whole GiB, MiB or
// KiB when exact ("4 GiB"), else rounded down to two decimals ("1.99 GiB",
// never more than there is), else bytes.
func formatBytes(n int64) string {
	if n < 0 {
		return "-" + formatBytes(-n)
	}
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n < u.size {
			continue
		}
		whole, frac := n/u.size, n%u.size*100/u.size
		if n%u.size == 0 {
			return strconv.FormatInt(whole, 10) + " " + u.name
		}
		s := fmt.Sprintf("%d.%02d", whole, frac)
		return strings.TrimSuffix(strings.TrimSuffix(s, "0"), ".0") + " " + u.name
	}
	return strconv.FormatInt(n, 10) + " B"
}

func plural(n int, one, many string) string {
	return strconv.Itoa(n) + " " + noun(n, one, many)
}

func noun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
