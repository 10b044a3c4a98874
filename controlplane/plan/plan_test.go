package plan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// goodFile is a plan file with every key.
const goodFile = `deployment: 7f3a9c2e51d04b8e
kind: es
display_name: Production search
aliases: [prod-search, search]
allow: [10.0.0.0/8, 192.0.2.7]
zones: 3
per_zone: 2
memory: 4GiB
spec:
  version: 8.13.0
  settings:
    replicas: 1
    ratio: 0.5
    index_buffer: 20%
    tags: [a, b]
    enabled: true
strategy: rolling
`

func TestParseGoodFile(t *testing.T) {
	p, err := Parse("plan.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	want := &Plan{Deployment: "7f3a9c2e51d04b8e", Kind: "es", DisplayName: "Production search",
		Aliases: []string{"prod-search", "search"}, Allow: []string{"10.0.0.0/8", "192.0.2.7"},
		Zones: 3, PerZone: 2, MemoryBytes: 4 << 30, Strategy: Rolling,
		Spec: json.RawMessage(`{"settings":{"enabled":true,"index_buffer":"20%","ratio":0.5,"replicas":1,"tags":["a","b"]},"version":"8.13.0"}`)}
	if !p.Equal(want) || string(p.Spec) != string(want.Spec) {
		t.Errorf("got %+v (spec %s)\nwant %+v", p, p.Spec, want)
	}
	if p.Instances() != 6 {
		t.Errorf("Instances() = %d; want 6", p.Instances())
	}

	// The smallest plan: the strategy defaults, the spec is none.
	p, err = Parse("min.yaml", []byte("deployment: 7f3a9c2e51d04b8e\nkind: kb\nzones: 1\nper_zone: 1\nmemory: 16777216\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Strategy != GrowAndShrink || p.Spec != nil || p.MemoryBytes != MinMemory {
		t.Errorf("got %+v; want the default strategy, no spec, 16 MiB", p)
	}
}

// withLine returns goodFile with the line that starts with key replaced
// by repl ("" to drop it).
func withLine(key, repl string) string {
	var b strings.Builder
	skip := false
	for _, l := range strings.SplitAfter(goodFile, "\n") {
		if skip && strings.HasPrefix(l, "  ") {
			continue
		}
		skip = false
		if strings.HasPrefix(l, key+":") {
			skip = true
			if repl != "" {
				b.WriteString(repl + "\n")
			}
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// Each field's problem is one line naming the file, the line and the
// field; the file is refused whole.
func TestParseRefuses(t *testing.T) {
	const d = "deployment 7f3a9c2e51d04b8e: "
	for _, c := range []struct {
		name, file, want string
	}{
		{"no deployment", withLine("deployment", ""), "t.yaml:1: deployment id is required"},
		{"bad deployment", withLine("deployment", "deployment: 7F3A"), `t.yaml:1: deployment id "7F3A" is not 8 to 32 lowercase hex digits`},
		{"deployment a list", withLine("deployment", "deployment: [a]"), "t.yaml:1: deployment must be a string"},
		{"no kind", withLine("kind", ""), "t.yaml:1: " + d + "kind is required"},
		{"bad kind", withLine("kind", "kind: ES"), "t.yaml:2: " + d + `kind "ES" is not a lowercase DNS label`},
		{"display_name", withLine("display_name", `display_name: "a\tb"`), "t.yaml:3: " + d + `display_name "a\tb": U+0009 is not a printable character`},
		{"bad alias", withLine("aliases", "aliases:\n  - ok\n  - Bad"), "t.yaml:6: " + d + `alias "Bad" is not a lowercase DNS label`},
		{"alias twice", withLine("aliases", "aliases: [a, a]"), "t.yaml:4: " + d + `alias "a" is listed twice`},
		{"alias not a string", withLine("aliases", "aliases: [a, {b: c}]"), "t.yaml:4: aliases: element 2 must be a string"},
		{"allow", withLine("allow", "allow: [10.0.0.1/8]"), "t.yaml:5: " + d + `allow: "10.0.0.1/8" has host bits set; the prefix is 10.0.0.0/8`},
		{"no zones", withLine("zones", ""), "t.yaml:1: " + d + "zones is required (1 to 10 distinct zones)"},
		{"zones 0", withLine("zones", "zones: 0"), "t.yaml:6: " + d + "zones 0 is out of range 1-10"},
		{"zones 11", withLine("zones", "zones: 11"), "t.yaml:6: " + d + "zones 11 is out of range 1-10"},
		{"zones a word", withLine("zones", "zones: three"), "t.yaml:6: " + d + `zones must be an integer, got "three"`},
		{"zones a float", withLine("zones", "zones: 2.5"), "t.yaml:6: " + d + `zones must be an integer, got "2.5"`},
		{"no per_zone", withLine("per_zone", "per_zone:"), "t.yaml:7: " + d + "per_zone is required (1 to 100 instances in each zone)"},
		{"per_zone 101", withLine("per_zone", "per_zone: 101"), "t.yaml:7: " + d + "per_zone 101 is out of range 1-100"},
		{"per_zone negative", withLine("per_zone", "per_zone: -1"), "t.yaml:7: " + d + "per_zone -1 is out of range 1-100"},
		{"no memory", withLine("memory", ""), "t.yaml:1: " + d + "memory is required (e.g. 4GiB)"},
		{"small memory", withLine("memory", "memory: 1MiB"), "t.yaml:8: " + d + "memory 1MiB is below the minimum, 16MiB"},
		{"memory GB", withLine("memory", "memory: 4GB"), "t.yaml:8: " + d + `memory: "4GB" is not a size (want bytes, or a whole number with KiB, MiB, GiB or TiB)`},
		{"memory a list", withLine("memory", "memory: [1]"), "t.yaml:8: " + d + "memory must be a size (e.g. 4GiB), got a list"},
		{"spec a list", withLine("spec", "spec: [1]"), "t.yaml:9: " + d + "spec must be a mapping"},
		{"spec infinite", withLine("spec", "spec: {a: {b: .inf}}"), "t.yaml:9: " + d + `spec.a.b: ".inf" is not a finite number`},
		{"spec key twice", withLine("spec", "spec:\n  a: 1\n  a: 2"), "t.yaml:11: " + d + `spec: key "a" is given twice`},
		{"strategy", withLine("strategy", "strategy: fast"), "t.yaml:17: " + d + `strategy "fast" is not grow_and_shrink or rolling`},
		{"unknown key", withLine("strategy", "strategy: rolling\ncpu: 2"), `t.yaml:18: unknown key "cpu" (known: deployment, kind, display_name, aliases, allow, zones, per_zone, memory, spec, strategy)`},
		{"memory_bytes in YAML", withLine("memory", "memory_bytes: 4294967296"), `t.yaml:8: unknown key "memory_bytes" (known: deployment, kind, display_name, aliases, allow, zones, per_zone, memory, spec, strategy)`},
		{"key twice", withLine("strategy", "strategy: rolling\nzones: 2"), `t.yaml:18: key "zones" is given twice`},
		{"two documents", goodFile + "---\n" + goodFile, "t.yaml:18: more than one YAML document"},
		{"trailing content", goodFile + "...\nzones: 3\n", "t.yaml:18: did not find expected <document start>"},
		{"syntax", "deployment: [7f3a9c2e51d04b8e\n", "t.yaml:1: did not find expected ',' or ']'"},
		{"empty", "# nothing\n", "t.yaml: file is empty"},
		{"a list", "- deployment: 7f3a9c2e51d04b8e\n", "t.yaml:1: a plan must be a mapping with keys deployment, kind, display_name, aliases, allow, zones, per_zone, memory, spec, strategy"},
	} {
		p, err := Parse("t.yaml", []byte(c.file))
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, %v\nwant %s", c.name, p, err, c.want)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	const good = `{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1073741824,"spec":{"b":1,"a":{"y":1.50,"x":"s"}}}`
	p, err := DecodeJSON([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Strategy != GrowAndShrink || string(p.Spec) != `{"a":{"x":"s","y":1.50},"b":1}` {
		t.Errorf("got strategy %q, spec %s; want the default and a canonical spec", p.Strategy, p.Spec)
	}
	const d = "deployment 7f3a9c2e51d04b8e: "
	for _, c := range []struct{ in, want string }{
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1073741824,"cpu":2}`, `plan: unknown key "cpu"`},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":"2","per_zone":1,"memory_bytes":1073741824}`, "plan: zones: want an integer, got string"},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","aliases":[1],"zones":2,"per_zone":1,"memory_bytes":1073741824}`, "plan: aliases: want a string, got number"},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"memory_bytes":1073741824}`, "plan: per_zone is required"},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1024}`, "plan: " + d + "memory_bytes 1024 is below the minimum, 16777216 (16 MiB)"},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1073741824,"spec":[1]}`, "plan: " + d + "spec: not a JSON object"},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1073741824,"strategy":"big_bang"}`, "plan: " + d + `strategy "big_bang" is not grow_and_shrink or rolling`},
		{`{"deployment":"7f3a9c2e51d04b8e","kind":"es","zones":2,"per_zone":1,"memory_bytes":1073741824} {}`, "plan: data after the JSON object"},
		{`{"deployment":`, "plan: not JSON: the object is not complete"},
		{``, "plan: empty: want a JSON object"},
	} {
		p, err := DecodeJSON([]byte(c.in))
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeJSON(%s) = %v, %v\nwant %s", c.in, p, err, c.want)
		}
	}
}

// The fields a plan shares with a deployment are checked by the routes
// model's rules, and the placeholders that complete the spec never cause
// an error of their own.
func TestValidateUsesTheRoutesRules(t *testing.T) {
	p := &Plan{Deployment: "7f3a9c2e51d04b8e", Kind: "es", Zones: 1, PerZone: 1, MemoryBytes: MinMemory}
	if err := p.Validate(); err != nil {
		t.Fatalf("a minimal plan: %v", err)
	}
	p.Allow = []string{"10.0.0.0/8", "10.0.0.0/8"}
	var e *Error
	if err := p.Validate(); !errors.As(err, &e) || e.Field != "allow" || e.Index != 1 ||
		err.Error() != `plan: deployment 7f3a9c2e51d04b8e: allow: "10.0.0.0/8" is listed twice` {
		t.Errorf("got %v (%+v); want the routes model's error on allow[1]", err, e)
	}
}

func TestEqualIgnoresDefaultsAndSpecOrder(t *testing.T) {
	a := &Plan{Deployment: "7f3a9c2e51d04b8e", Kind: "es", Zones: 1, PerZone: 1, MemoryBytes: MinMemory,
		Spec: json.RawMessage(`{"a":1,"b":[true]}`), Aliases: []string{}}
	b := &Plan{Deployment: "7f3a9c2e51d04b8e", Kind: "es", Zones: 1, PerZone: 1, MemoryBytes: MinMemory,
		Spec: json.RawMessage(` { "b" : [ true ], "a" : 1 } `), Strategy: GrowAndShrink}
	if !a.Equal(b) {
		t.Error("plans equal but for the spelling of their defaults and spec are not Equal")
	}
	b.PerZone = 2
	if a.Equal(b) {
		t.Error("plans with another per_zone are Equal")
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"4GiB", 4 << 30, false}, {"512 MiB", 512 << 20, false}, {"16777216", 16 << 20, false}, {"1TiB", 1 << 40, false},
		{"4GB", 0, true}, {"1.5GiB", 0, true}, {"-1", 0, true}, {"+1", 0, true}, {"GiB", 0, true}, {"9999999999TiB", 0, true},
	} {
		got, err := ParseSize(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
