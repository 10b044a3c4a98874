package routes

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
)

// dep builds a valid deployment for tests; change it before use.
func dep(id string, gens map[string]int, insts ...*Instance) *DeploymentSpec {
	return &DeploymentSpec{ID: id, Kind: "es", Aliases: []string{"a" + id[:4]}, Serving: gens, Instances: insts}
}

func inst(id, zone, gen string) *Instance {
	return &Instance{ID: id, Addr: "127.0.0.1:9200", Zone: zone, Generation: gen}
}

func TestNewTableEligible(t *testing.T) {
	down := map[string]ZoneState{"zone-b": ZoneDown}
	tests := []struct {
		name    string
		zones   map[string]ZoneState
		serving map[string]int
		insts   []*Instance
		want    map[string]float64 // eligible instance -> share of traffic
	}{
		{
			name:    "one generation, even split",
			serving: map[string]int{"blue": 100},
			insts:   []*Instance{inst("i1", "zone-a", "blue"), inst("i2", "zone-b", "blue")},
			want:    map[string]float64{"i1": 0.5, "i2": 0.5},
		},
		{
			name:    "weight-0 generation excluded",
			serving: map[string]int{"blue": 0, "green": 100},
			insts:   []*Instance{inst("i1", "zone-a", "blue"), inst("i2", "zone-a", "green")},
			want:    map[string]float64{"i2": 1},
		},
		{
			name:    "maintenance excluded",
			serving: map[string]int{"blue": 100},
			insts: []*Instance{inst("i1", "zone-a", "blue"), inst("i2", "zone-a", "blue"),
				{ID: "i3", Addr: "127.0.0.1:1", Zone: "zone-a", Generation: "blue", Maintenance: true}},
			want: map[string]float64{"i1": 0.5, "i2": 0.5},
		},
		{
			name:    "zone down excluded",
			zones:   down,
			serving: map[string]int{"blue": 100},
			insts:   []*Instance{inst("i1", "zone-a", "blue"), inst("i2", "zone-b", "blue"), inst("i3", "zone-c", "blue")},
			want:    map[string]float64{"i1": 0.5, "i3": 0.5},
		},
		{
			name:    "weights proportional: blue 90 over 3, green 10 over 2",
			serving: map[string]int{"blue": 90, "green": 10},
			insts: []*Instance{inst("b1", "zone-a", "blue"), inst("b2", "zone-b", "blue"), inst("b3", "zone-a", "blue"),
				inst("g1", "zone-a", "green"), inst("g2", "zone-b", "green")},
			want: map[string]float64{"b1": 0.30, "b2": 0.30, "b3": 0.30, "g1": 0.05, "g2": 0.05},
		},
		{
			name:    "a generation's weight stays with it when some of its instances are out",
			zones:   down,
			serving: map[string]int{"blue": 90, "green": 10},
			insts: []*Instance{inst("b1", "zone-a", "blue"), inst("b2", "zone-b", "blue"),
				inst("g1", "zone-a", "green"), inst("g2", "zone-b", "green")},
			want: map[string]float64{"b1": 0.90, "g1": 0.10},
		},
		{
			name:    "nothing eligible",
			zones:   down,
			serving: map[string]int{"blue": 100},
			insts:   []*Instance{inst("i1", "zone-b", "blue")},
			want:    map[string]float64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := NewTable("example.test", tt.zones, []*DeploymentSpec{dep("7f3a9c2e51d04b8e", tt.serving, tt.insts...)})
			if err != nil {
				t.Fatalf("NewTable: %v", err)
			}
			d := tb.Deployments()[0]
			if len(d.Eligible) != len(d.Weights) {
				t.Fatalf("len(Eligible) = %d, len(Weights) = %d", len(d.Eligible), len(d.Weights))
			}
			var sum uint64
			got := map[string]float64{}
			for i, in := range d.Eligible {
				sum += d.Weights[i]
				got[in.ID] = float64(d.Weights[i]) / float64(d.TotalWeight)
			}
			if sum != d.TotalWeight {
				t.Errorf("sum of Weights = %d; TotalWeight = %d", sum, d.TotalWeight)
			}
			if g, w := shares(got), shares(tt.want); g != w {
				t.Errorf("shares = %s; want %s", g, w)
			}
		})
	}
}

// shares formats instance shares in a stable order, rounded.
func shares(m map[string]float64) string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s=%.4f ", id, m[id])
	}
	return b.String()
}

func TestNewTableErrors(t *testing.T) {
	good := func() *DeploymentSpec {
		return dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
	}
	other := func() *DeploymentSpec {
		return dep("c41d8e2b7a9f4063", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
	}
	tests := []struct {
		name   string
		domain string
		zones  map[string]ZoneState
		deps   func() []*DeploymentSpec
		want   string // "" for ErrEmptyTable
	}{
		{"empty", "example.test", nil, func() []*DeploymentSpec { return nil }, ""},
		{"no domain", "", nil, func() []*DeploymentSpec { return []*DeploymentSpec{good()} }, "routes: domain is required"},
		{"bad domain", "exa_mple.test", nil, func() []*DeploymentSpec { return []*DeploymentSpec{good()} },
			`routes: domain "exa_mple.test" is not a valid DNS name`},
		{"bad zone state", "example.test", map[string]ZoneState{"zone-a": 7}, func() []*DeploymentSpec { return []*DeploymentSpec{good()} },
			"routes: zone zone-a: state 7 is not up or down"},
		{"duplicate id", "example.test", nil, func() []*DeploymentSpec { return []*DeploymentSpec{good(), good()} },
			"routes: deployment 7f3a9c2e51d04b8e is listed twice"},
		{"duplicate alias key", "example.test", nil, func() []*DeploymentSpec {
			o := other()
			o.Aliases = []string{"a7f3a"}
			return []*DeploymentSpec{good(), o}
		}, `routes: deployment c41d8e2b7a9f4063: alias key "a7f3a.es" is already used by deployment 7f3a9c2e51d04b8e`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := NewTable(tt.domain, tt.zones, tt.deps())
			if tb != nil || err == nil {
				t.Fatalf("NewTable = %v, %v; want an error", tb, err)
			}
			if tt.want == "" {
				if !errors.Is(err, ErrEmptyTable) {
					t.Errorf("got %v; want ErrEmptyTable", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || err.Error() != tt.want {
				t.Errorf("got %q; want %q wrapping ErrInvalid", err, tt.want)
			}
		})
	}
}

func TestNewTableSameAliasOtherKind(t *testing.T) {
	// prod.es and prod.kb are different keys.
	a := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
	b := dep("c41d8e2b7a9f4063", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
	a.Aliases, b.Aliases, b.Kind = []string{"prod"}, []string{"prod"}, "kb"
	tb, err := NewTable("Example.Test", nil, []*DeploymentSpec{b, a})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"prod.es": a.ID, "prod.kb": b.ID, a.ID: a.ID, b.ID: b.ID, "prod": "", "prod.apm": ""} {
		got := tb.Lookup([]byte(key))
		if (want == "" && got != nil) || (want != "" && (got == nil || got.ID != want)) {
			t.Errorf("Lookup(%q) = %v; want %q", key, got, want)
		}
	}
	if tb.Domain != "example.test" || tb.Deployments()[0].ID != a.ID {
		t.Errorf("Domain = %q, Deployments[0] = %s; want example.test, sorted by ID", tb.Domain, tb.Deployments()[0].ID)
	}
	var none *Table
	if none.Lookup([]byte("prod.es")) != nil {
		t.Errorf("nil table found something")
	}
}

func TestValidateDeployment(t *testing.T) {
	const p = "routes: deployment 7f3a9c2e51d04b8e: "
	tests := []struct {
		name   string
		change func(d *DeploymentSpec)
		want   string
	}{
		{"valid", func(d *DeploymentSpec) {}, ""},
		{"no id", func(d *DeploymentSpec) { d.ID = "" }, "routes: deployment id is required"},
		{"bad id", func(d *DeploymentSpec) { d.ID = "xyz" }, `routes: deployment id "xyz" is not 8 to 32 lowercase hex digits`},
		{"no kind", func(d *DeploymentSpec) { d.Kind = "" }, p + "kind is required"},
		{"bad alias", func(d *DeploymentSpec) { d.Aliases = []string{"-x"} }, p + `alias "-x" is not a lowercase DNS label`},
		{"nil serving", func(d *DeploymentSpec) { d.Serving = nil }, p + "serving is required"},
		{"weight too large", func(d *DeploymentSpec) { d.Serving["blue"] = MaxWeight + 1 }, p + "serving: blue: weight 1000001 is out of range 0-1000000"},
		{"no instances", func(d *DeploymentSpec) { d.Instances = nil }, p + "no instances"},
		{"nil instance", func(d *DeploymentSpec) { d.Instances = append(d.Instances, nil) }, p + "instance 2 is null"},
		{"bad addr", func(d *DeploymentSpec) { d.Instances[0].Addr = "foo" }, p + `instance i1: addr "foo" is not host:port`},
		{"port with sign", func(d *DeploymentSpec) { d.Instances[0].Addr = "h:+80" }, p + `instance i1: addr "h:+80": port must be 1-65535`},
		{"generation not serving", func(d *DeploymentSpec) { d.Instances[0].Generation = "green" }, p + `instance i1: generation "green" is not in serving`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
			tt.change(d)
			err := ValidateDeployment(d)
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v; want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v; want %q wrapping ErrInvalid", err, tt.want)
			}
		})
	}
	if err := ValidateDeployment(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("ValidateDeployment(nil) = %v; want ErrInvalid", err)
	}
}

// A table may be built from the specs of a live table (as a delta does);
// the live table's computed fields must not change under its readers, and
// the instances are the same pointers in both.
func TestNewTableDoesNotModifyItsInput(t *testing.T) {
	spec := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i1", "zone-a", "blue"))
	live, err := NewTable("example.test", nil, []*DeploymentSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	d := live.Deployments()[0]
	next, err := NewTable("example.test", map[string]ZoneState{"zone-a": ZoneDown}, []*DeploymentSpec{&d.DeploymentSpec})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Eligible) != 1 || len(next.Deployments()[0].Eligible) != 0 {
		t.Errorf("live eligible %d, next eligible %d; want 1 and 0", len(d.Eligible), len(next.Deployments()[0].Eligible))
	}
	if d.Instances[0] != spec.Instances[0] || next.Deployments()[0].Instances[0] != spec.Instances[0] {
		t.Error("a table holds copies of its spec's instances; want the same pointers")
	}
	// Eligible may be the spec's own list (all eligible): an append to
	// it must not reach the spec's array.
	if cap(d.Eligible) != len(d.Eligible) {
		t.Errorf("eligible has room for %d more; want none", cap(d.Eligible)-len(d.Eligible))
	}
}

func TestDeploymentAllows(t *testing.T) {
	spec := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	spec.Allow = []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32"}
	openSpec := dep("0c9e2b7a44f14c53", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	tb, err := NewTable("example.test", nil, []*DeploymentSpec{spec, openSpec})
	if err != nil {
		t.Fatal(err)
	}
	d, open := tb.Lookup([]byte(spec.ID)), tb.Lookup([]byte(openSpec.ID))
	if len(d.AllowNets) != 3 || open.AllowNets != nil {
		t.Fatalf("AllowNets = %v and %v; want 3 prefixes and nil", d.AllowNets, open.AllowNets)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"203.0.113.0", true},
		{"203.0.113.255", true},
		{"203.0.114.1", false},
		{"198.51.100.7", true},
		{"198.51.100.8", false},
		{"::ffff:203.0.113.9", true}, // a v4 client on a dual-stack socket
		{"2001:db8:1::5", true},
		{"2001:db9::5", false},
		{"127.0.0.1", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := d.Allows(a); got != tc.want {
			t.Errorf("Allows(%s) = %v; want %v", tc.addr, got, tc.want)
		}
		if !open.Allows(a) {
			t.Errorf("deployment without a filter: Allows(%s) = false", tc.addr)
		}
	}
	if d.Allows(netip.Addr{}) {
		t.Error("Allows(unknown address) = true with a filter; want false")
	}
	if !open.Allows(netip.Addr{}) {
		t.Error("Allows(unknown address) = false without a filter; want true")
	}
}

func TestValidateAllow(t *testing.T) {
	for _, tc := range []struct {
		allow []string
		err   string // "" for valid
	}{
		{[]string{"10.0.0.0/8", "::/0", "192.0.2.1", "2001:db8::1"}, ""},
		{[]string{"10.0.0.0/8", "10.0.0.0/8"}, `allow: "10.0.0.0/8" is listed twice`},
		{[]string{"10.0.0.1/8"}, `host bits set; the prefix is 10.0.0.0/8`},
		{[]string{"office"}, `"office" is not an IP address or CIDR prefix`},
		{[]string{strings.Repeat("x", 100)}, `"` + strings.Repeat("x", 61) + `..." is not`},
		{[]string{"::ffff:192.0.2.0/120"}, `IPv4-mapped IPv6 prefix`},
	} {
		d := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
		d.Allow = tc.allow
		err := ValidateDeployment(d)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("allow %q: %v; want valid", tc.allow, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid)):
			t.Errorf("allow %q: error %v; want one containing %q", tc.allow, err, tc.err)
		}
	}
}

func TestValidateDisplayName(t *testing.T) {
	const p = "routes: deployment 7f3a9c2e51d04b8e: "
	for _, tc := range []struct {
		name string
		err  string // "" for valid
	}{
		{"", ""},
		{"Production search", ""},
		{"Suche – Zürich 🔍", ""},
		{strings.Repeat("é", MaxDisplayNameLen), ""},
		{strings.Repeat("é", MaxDisplayNameLen+1), p + "display_name has 65 characters; at most 64"},
		{"bad \xff byte", p + "display_name is not valid UTF-8"},
		{"two\nlines", p + `display_name "two\nlines": U+000A is not a printable character`},
		{"no\u00a0break", p + `display_name "no\u00a0break": U+00A0 is not a printable character`},
		{"bidi\u202eoverride", p + `display_name "bidi\u202eoverride": U+202E is not a printable character`},
	} {
		d := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
		d.DisplayName = tc.name
		err := ValidateDeployment(d)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("display name %q: %v; want valid", tc.name, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err || !errors.Is(err, ErrInvalid)):
			t.Errorf("display name %q: error %v; want %q", tc.name, err, tc.err)
		}
	}
}
