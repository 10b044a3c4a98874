package routesfile

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// The fast path (fast.go) against the yaml.v3 path: whatever the fast path
// accepts, the yaml.v3 path accepts as the same table. What the fast path
// leaves alone, Parse reads with the yaml.v3 path, so its errors are the
// yaml.v3 path's by construction.

// agree parses data with both paths and reports how they differ, if they
// do; taken says whether the fast path gave a table.
func agree(t *testing.T, what string, data []byte) (taken bool) {
	t.Helper()
	fast := parseFast(data)
	ref, err := parseYAML("f.yaml", data)
	if fast == nil {
		return false
	}
	if err != nil {
		t.Errorf("%s: the fast path accepts what the yaml.v3 path refuses (%v):\n%s", what, err, data)
		return true
	}
	if d := tableDiff(fast, ref); d != "" {
		t.Errorf("%s: the fast path's table differs from the yaml.v3 path's: %s\n%s", what, d, data)
	}
	return true
}

// tableDiff describes the first difference between two tables, or is "".
func tableDiff(a, b *routes.Table) string {
	switch {
	case a.Domain != b.Domain:
		return fmt.Sprintf("domain %q, want %q", a.Domain, b.Domain)
	case !reflect.DeepEqual(a.Zones, b.Zones):
		return fmt.Sprintf("zones %v, want %v", a.Zones, b.Zones)
	case a.Len() != b.Len():
		return fmt.Sprintf("%d deployments, want %d", a.Len(), b.Len())
	}
	for i, d := range a.Deployments() {
		if w := b.Deployments()[i]; !reflect.DeepEqual(d, w) {
			return fmt.Sprintf("deployment %d:\n%#v\nwant\n%#v", i, d.DeploymentSpec, w.DeploymentSpec)
		}
	}
	return ""
}

// figuresFile is a routes file of n deployments in the form of the yardctl
// figures (internal/e2e/yardctlbench_test.go): two instances each, in flow
// style, an alias, two generations.
func figuresFile(n int) []byte {
	var b bytes.Buffer
	b.WriteString("domain: example.test\ndeployments:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - id: %016x\n    kind: es\n    aliases: [d%d]\n    serving: {blue: 100, green: 0}\n    instances:\n", i, i)
		fmt.Fprintf(&b, "      - {id: i-b, addr: 127.0.0.1:20000, zone: zone-a, generation: blue}\n")
		fmt.Fprintf(&b, "      - {id: i-g, addr: 127.0.0.1:20001, zone: zone-b, generation: green}\n")
	}
	return b.Bytes()
}

// docsRoutesFiles returns the routes files among the YAML examples of
// docs/ and configs/.
func docsRoutesFiles(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	docs, _ := filepath.Glob("../../docs/*.md")
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllSubmatch(b, -1) {
			if bytes.Contains(m[1], []byte("deployments:")) {
				out[fmt.Sprintf("%s#%d", filepath.Base(f), i)] = m[1]
			}
		}
	}
	b, err := os.ReadFile("../../configs/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out["configs/routes.yaml"] = b
	return out
}

// testdataFiles returns the files of testdata/good and testdata/bad.
func testdataFiles(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for _, pat := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) == 0 {
		t.Fatal("no testdata")
	}
	return out
}

func TestFastAgreesOnExamples(t *testing.T) {
	inputs := testdataFiles(t)
	for k, v := range docsRoutesFiles(t) {
		inputs[k] = v
	}
	inputs["figures"] = figuresFile(2000)
	for name, data := range inputs {
		agree(t, name, data)
	}
}

// The fast path is taken for the files as they are written: the examples
// of the documentation and the valid test files (those without anchors),
// the figures' files, and what yaml.Marshal writes of a table. (Otherwise
// the other tests would hold nothing.)
func TestFastTakesRoutesFiles(t *testing.T) {
	inputs := map[string][]byte{}
	for name, data := range docsRoutesFiles(t) {
		if !bytes.ContainsAny(data, "&*") {
			inputs[name] = data
		}
	}
	for name, data := range testdataFiles(t) {
		if strings.HasPrefix(name, "testdata/good/") && !bytes.ContainsAny(data, "&*") {
			inputs[name] = data
		}
	}
	inputs["figures"] = figuresFile(100)
	tb, err := ParseFile("testdata/good/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inputs["yaml.Marshal"] = render(t, tb)
	for name, data := range inputs {
		if _, err := parseYAML(name, data); err != nil {
			continue // an example of an error
		}
		if !agree(t, name, data) {
			t.Errorf("%s: the fast path leaves it to yaml.v3", name)
		}
	}
}

// A deployment with every field of the spec is taken by the fast path:
// a new field makes this test fail until the fast path reads it (before,
// every file with it would go the slow way).
func TestFastKnowsEveryField(t *testing.T) {
	const file = `domain: example.test
zones: {zone-a: up}
deployments:
  - id: 7f3a9c2e51d04b8e
    kind: es
    display_name: Search
    aliases: [search]
    allow: [10.0.0.0/8]
    serving: {blue: 100}
    instances:
      - {id: i-1, addr: 127.0.0.1:1, zone: zone-a, generation: blue, maintenance: true}
      - {id: i-2, addr: 127.0.0.1:2, zone: zone-a, generation: blue}
`
	for _, st := range []*specType{deploymentSpec, deploymentSpec.fields[len(deploymentSpec.fields)-1].elem} {
		for _, k := range st.keys {
			if !strings.Contains(file, " "+k+":") && !strings.Contains(file, "{"+k+":") {
				t.Errorf("the test file has no key %s (%s); add it", k, st.typ.Name())
			}
		}
	}
	if !agree(t, "every field", []byte(file)) {
		t.Error("the fast path leaves a file with every field to yaml.v3")
	}
}

func TestFastAgreesOnGeneratedFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	const n = 500
	for i := range n {
		data := genFile(rng, 1+rng.IntN(4))
		if agree(t, fmt.Sprintf("generated file %d", i), data) {
			taken++
		}
	}
	t.Logf("the fast path took %d of %d generated files", taken, n)
	// Most generated files are in the fast path's form; some are not
	// (a multi-line value, an escape) or are refused by validation.
	if taken < n/2 {
		t.Errorf("the fast path took %d of %d generated files; want at least half", taken, n)
	}
}

func TestFastAgreesOnMutatedFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bases := [][]byte{figuresFile(3)}
	for name, data := range testdataFiles(t) {
		if strings.HasPrefix(name, "testdata/good/") {
			bases = append(bases, data)
		}
	}
	for range 40 {
		bases = append(bases, genFile(rng, 1+rng.IntN(3)))
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	taken := 0
	for i := range n {
		data := bases[rng.IntN(len(bases))]
		data = mutate(rng, data)
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(2) {
				data = mutate(rng, data)
			}
		}
		if agree(t, fmt.Sprintf("mutation %d", i), data) {
			taken++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("the fast path took %d of %d mutated files", taken, n)
	// Many mutations keep a valid file (another ID, a comment, a space);
	// the fast path must be taking those for this test to hold anything.
	if taken < n/20 {
		t.Errorf("the fast path took %d of %d mutated files; want at least %d", taken, n, n/20)
	}
}

// shapeBase is the file that the shapes below change.
const shapeBase = `domain: example.test
deployments:
  - id: 7f3a9c2e51d04b8e
    kind: es
    display_name: Search
    aliases: [search]
    serving: {blue: 100, green: 0}
    instances:
      - {id: i-1, addr: 127.0.0.1:1, zone: zone-a, generation: blue}
`

// shapes are the forms at the edge of the fast path's: shapeBase with old
// replaced by new, and whether the fast path takes it (when it does not,
// the yaml.v3 path reads it).
var shapes = []struct {
	name, old, new string
	take           bool
}{
	{"as it is", "", "", true},
	{"plain ~ is null", "Search", "~", true},
	{"plain null is null", "Search", "null", true},
	{"plain NULL is null", "Search", "NULL", true},
	{"nothing is null", " Search", "", true},
	{"quoted ~ is text", "Search", `"~"`, true},
	{"'' in single quotes", "Search", "'it''s'", true},
	{"' in double quotes", "Search", `"it's"`, true},
	{"# inside a plain scalar", "Search", "a#b", true},
	{"# after a space is a comment", "Search", "a #b", true},
	{"a number as text", "Search", "2024", true},
	{"non-ASCII", "Search", "Zürich — 日本", true},
	{"two spaces inside", "Search", "a  b", true},
	{"plain a: b is a mapping", "Search", "x: y", false},
	{"plain a: is a mapping", "Search", "x:", false},
	{"an escape", "Search", `"a\"b"`, false},
	{"a continuation line", "Search", "a\n      b", false},
	{"a continuation line after a blank", "Search", "a\n\n      b", false},
	{"a block scalar", "Search", "|\n      a", false},
	{"a tag", "Search", "!!str 2024", false},
	{"an anchor", "[search]", "&a [search]", false},
	{"a value on the next line", " Search", "\n      Search", false},
	{"a tab", "    kind", "\tkind", false},
	{"a tab in a value", "Search", "a\tb", false},
	{"CRLF", "\n", "\r\n", false},
	{"a BOM", "domain", "\ufeffdomain", false},
	{"a document start", "domain", "---\ndomain", false},
	{"two documents", "deployments:", "---\ndeployments:", false},
	{"a key given twice", "    kind: es\n", "    kind: es\n    kind: es\n", false},
	{"an unknown key", "kind: es", "kind: es\n    size: 1", false},
	{"a space before ':'", "kind: es", "kind : es", false},
	{"a quoted key", "kind: es", `"kind": es`, false},
	{"block serving", "{blue: 100, green: 0}", "\n      blue: 100\n      green: 0", true},
	{"block serving, less indented", "{blue: 100, green: 0}", "\n     blue: 100\n      green: 0", false},
	{"weight 010 is octal", "blue: 100", "blue: 010", false},
	{"weight 0x10", "blue: 100", "blue: 0x10", false},
	{"weight 1_0", "blue: 100", "blue: 1_0", false},
	{"weight +1", "blue: 100", "blue: +1", false},
	{"weight quoted", "blue: 100", `blue: "100"`, false},
	{"weight 1000000", "blue: 100", "blue: 1000000", true},
	{"weight 1000001", "blue: 100", "blue: 1000001", false},
	{"a generation given twice", "green: 0", "blue: 1", false},
	{"maintenance True", "generation: blue}", "generation: blue, maintenance: True}", true},
	{"maintenance ~", "generation: blue}", "generation: blue, maintenance: ~}", true},
	{"maintenance yes", "generation: blue}", "generation: blue, maintenance: yes}", false},
	{"a quoted IPv6 address", "127.0.0.1:1", `"[::1]:1"`, true},
	{"a flow scalar with ': '", "127.0.0.1:1", "a: b", false},
	{"a flow scalar ending in ':'", "127.0.0.1:1", "h:", false},
	{"a trailing comma", "generation: blue}", "generation: blue,}", false},
	{"a flow mapping over two lines", "generation: blue}", "generation:\n        blue}", false},
	{"block aliases, indented", "[search]", "\n      - search", true},
	{"block aliases at the key's column", "[search]", "\n    - search", true},
	{"block aliases, over-indented", "[search]", "\n      - search\n        - more", false},
	{"aliases null", "[search]", "~", true},
	{"aliases empty", "[search]", "[]", true},
	{"block instances", "- {id: i-1, addr: 127.0.0.1:1, zone: zone-a, generation: blue}",
		"- id: i-1\n        addr: 127.0.0.1:1\n        zone: zone-a\n        generation: blue", true},
	{"block instances, a key over-indented", "- {id: i-1, addr: 127.0.0.1:1, zone: zone-a, generation: blue}",
		"- id: i-1\n        addr: 127.0.0.1:1\n         zone: zone-a\n        generation: blue", false},
	{"an entry on the line below its '-'", "- {id: i-1", "-\n        {id: i-1", false},
	{"a flow deployment", "  - id: 7f3a9c2e51d04b8e\n    kind: es\n    display_name: Search\n",
		"  - {id: 7f3a9c2e51d04b8e, kind: es, display_name: Search, serving: {blue: 1}, instances: [{id: i-2, addr: 'h:1', zone: z, generation: blue}]}\n  - id: 0f3a9c2e51d04b8e\n    kind: es\n", true},
	{"a flow deployment with ': '", "  - id: 7f3a9c2e51d04b8e\n    kind: es\n    display_name: Search\n",
		"  - {id: 7f3a9c2e51d04b8e, kind: es, display_name: x: y, serving: {blue: 1}, instances: [{id: i-2, addr: 'h:1', zone: z, generation: blue}]}\n  - id: 0f3a9c2e51d04b8e\n    kind: es\n", false},
	{"zones", "deployments:", "zones: {zone-a: down}\ndeployments:", true},
	{"zones null", "deployments:", "zones: ~\ndeployments:", true},
	{"zones empty", "deployments:", "zones: {}\ndeployments:", true},
	{"a zone given twice", "deployments:", "zones:\n  a: up\n  a: up\ndeployments:", false},
	{"comments and blank lines", "    kind: es\n", "    kind: es  # the kind\n\n# a comment\n        # another\n", true},
	{"the deployments at the key's column", "  - id", "- id", false}, // the rest stays more indented
	{"an indented top level", "domain", " domain", false},
}

// The fast path takes the forms it is meant to take, and leaves the
// others; whichever it takes, the yaml.v3 path reads the same.
func TestFastShapes(t *testing.T) {
	for _, tc := range shapes {
		data := []byte(strings.Replace(shapeBase, tc.old, tc.new, 1))
		if tc.old != "" && !strings.Contains(shapeBase, tc.old) {
			t.Fatalf("%s: the base has no %q", tc.name, tc.old)
		}
		if got := agree(t, tc.name, data); got != tc.take {
			_, err := parseYAML("f.yaml", data)
			t.Errorf("%s: taken by the fast path: got %v; want %v (yaml.v3: %v)\n%s", tc.name, got, tc.take, err, data)
		}
	}
}

// FuzzFastParse holds the fast path to the yaml.v3 path: whatever it
// accepts, the yaml.v3 path accepts as the same table (domain, zones, and
// every deployment field for field). Each input is checked as it is and
// after a few of mutate's changes (chosen by the input), which make the
// YAML-level edits that byte flips seldom find. Seeds: the files of
// testdata/good and testdata/bad, the documentation's examples, the
// shapes, and generated files.
func FuzzFastParse(f *testing.F) {
	for _, data := range testdataFiles(f) {
		f.Add(data)
	}
	for _, data := range docsRoutesFiles(f) {
		f.Add(data)
	}
	for _, tc := range shapes {
		f.Add([]byte(strings.Replace(shapeBase, tc.old, tc.new, 1)))
	}
	f.Add(figuresFile(2))
	rng := rand.New(rand.NewPCG(5, 6))
	for range 40 {
		f.Add(genFile(rng, 2))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		agree(t, "input", data)
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), 0))
		for range 4 {
			agree(t, "mutated input", mutate(rng, data))
		}
	})
}

// genFile writes a routes file of n deployments in a random mix of the
// forms a routes file may take: block and flow collections, quoting,
// comments, key orders, indentation, nulls, and now and then a form the
// fast path does not take.
func genFile(rng *rand.Rand, n int) []byte {
	g := &gen{rng: rng, ind: 1 + rng.IntN(4)}
	var b bytes.Buffer
	parts := []func(){
		func() {
			fmt.Fprintf(&b, "domain: %s%s\n", g.scalar(g.pick("example.test", "Example.TEST", ".example.test")), g.comment())
		},
		func() {
			zones := map[string]string{}
			for range rng.IntN(3) {
				zones[g.pick("zone-a", "zone-b", "zone-c")] = g.pick("up", "down")
			}
			g.mapping(&b, 0, "zones", zones, true)
		},
		func() {
			b.WriteString("deployments:" + g.comment() + "\n")
			seqInd := g.ind * rng.IntN(2)
			for i := range n {
				g.blank(&b)
				if rng.IntN(6) == 0 {
					g.flowDeployment(&b, seqInd, i)
					continue
				}
				g.deployment(&b, seqInd, i)
			}
		},
	}
	rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	if rng.IntN(3) == 0 {
		b.WriteString("# a routes file\n")
	}
	for _, part := range parts {
		part()
		g.blank(&b)
	}
	return b.Bytes()
}

type gen struct {
	rng *rand.Rand
	ind int // indentation step
}

func (g *gen) pick(s ...any) string { return fmt.Sprint(s[g.rng.IntN(len(s))]) }

func (g *gen) comment() string {
	if g.rng.IntN(6) == 0 {
		return g.pick("  # note", " #", " # a: b, [c]")
	}
	return ""
}

func (g *gen) blank(b *bytes.Buffer) {
	switch g.rng.IntN(8) {
	case 0:
		b.WriteString("\n")
	case 1:
		b.WriteString(strings.Repeat(" ", g.rng.IntN(6)) + "# comment\n")
	}
}

// scalar writes s as a plain, single- or double-quoted scalar.
func (g *gen) scalar(s string) string {
	switch g.rng.IntN(8) {
	case 0:
		return `"` + s + `"`
	case 1:
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return s
}

// mapping writes key: and m as a flow mapping, a block mapping, or null
// when m is empty; the values quoted now and then if quote.
func (g *gen) mapping(b *bytes.Buffer, ind int, key string, m map[string]string, quote bool) {
	pad := strings.Repeat(" ", ind)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	g.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	if len(keys) == 0 && g.rng.IntN(2) == 0 {
		fmt.Fprintf(b, "%s%s:%s\n", pad, key, g.pick("", " ~", " null", " {}"))
		return
	}
	if g.rng.IntN(2) == 0 {
		var items []string
		for _, k := range keys {
			v := m[k]
			if quote {
				v = g.scalar(v)
			}
			items = append(items, k+": "+v)
		}
		fmt.Fprintf(b, "%s%s: {%s}%s\n", pad, key, strings.Join(items, g.pick(", ", ",  ")), g.comment())
		return
	}
	fmt.Fprintf(b, "%s%s:%s\n", pad, key, g.comment())
	for _, k := range keys {
		fmt.Fprintf(b, "%s%s: %s%s\n", strings.Repeat(" ", ind+g.ind), k, m[k], g.comment())
	}
}

// list writes key: and l as a flow or block sequence, or null when l is
// empty.
func (g *gen) list(b *bytes.Buffer, ind int, key string, l []string) {
	pad := strings.Repeat(" ", ind)
	if len(l) == 0 && g.rng.IntN(2) == 0 {
		fmt.Fprintf(b, "%s%s:%s\n", pad, key, g.pick("", " ~", " []"))
		return
	}
	if g.rng.IntN(2) == 0 {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = g.scalar(s)
		}
		fmt.Fprintf(b, "%s%s: [%s]%s\n", pad, key, strings.Join(q, ", "), g.comment())
		return
	}
	fmt.Fprintf(b, "%s%s:\n", pad, key)
	seqPad := strings.Repeat(" ", ind+g.ind*g.rng.IntN(2))
	for _, s := range l {
		fmt.Fprintf(b, "%s- %s%s\n", seqPad, g.scalar(s), g.comment())
	}
}

func (g *gen) deployment(b *bytes.Buffer, ind, i int) {
	rng := g.rng
	gens := []string{"blue", "green"}[:1+rng.IntN(2)]
	type field struct {
		key   string
		write func(ind int)
	}
	fields := []field{
		{"id", func(ind int) {
			id := g.pick(fmt.Sprintf("%016x", 0xabc0+i), fmt.Sprintf("%08d", 12345670+i), fmt.Sprintf("%032x", i+1))
			fmt.Fprintf(b, "%sid: %s%s\n", strings.Repeat(" ", ind), g.scalar(id), g.comment())
		}},
		{"kind", func(ind int) {
			fmt.Fprintf(b, "%skind: %s\n", strings.Repeat(" ", ind), g.scalar(g.pick("es", "kb", "fleet")))
		}},
		{"serving", func(ind int) {
			m := map[string]string{}
			for j, gn := range gens {
				m[gn] = g.pick(100, 1, 0, 1000000, "0", "10")
				if j == 0 {
					m[gn] = g.pick(100, 1, 1000000, 7)
				}
				if rng.IntN(20) == 0 { // integers in other notations
					m[gn] = g.pick("010", "0x10", "0o10", "1_0", "+1", "1e2", "10.0", "00")
				}
			}
			g.mapping(b, ind, "serving", m, false)
		}},
		{"instances", func(ind int) {
			fmt.Fprintf(b, "%sinstances:\n", strings.Repeat(" ", ind))
			seqInd := ind + g.ind*rng.IntN(2)
			for j := range 1 + rng.IntN(3) {
				g.instance(b, seqInd, j, gens[rng.IntN(len(gens))])
			}
		}},
	}
	if rng.IntN(2) == 0 {
		fields = append(fields, field{"aliases", func(ind int) {
			var l []string
			for j := range rng.IntN(3) {
				l = append(l, fmt.Sprintf("a%d-%d", i, j))
			}
			g.list(b, ind, "aliases", l)
		}})
	}
	if rng.IntN(3) == 0 {
		fields = append(fields, field{"allow", func(ind int) {
			var l []string
			for range rng.IntN(3) {
				l = append(l, g.pick("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"))
			}
			slices.Sort(l)
			g.list(b, ind, "allow", slices.Compact(l))
		}})
	}
	if rng.IntN(3) == 0 {
		fields = append(fields, field{"display_name", func(ind int) {
			// Text that YAML reads in more than one way, in every style:
			// plain, it is null, a comment, a mapping or a number.
			name := g.pick("Search", "Production search (EU) — Zürich", "it's", "a#b", "a #b", "x: y", "x:",
				"2024", "0x10", "true", "", "~", "null", "NULL", "a  b", "Ünïcode 日本", `a "b"`)
			v := g.scalar(name)
			if strings.Contains(name, `"`) && rng.IntN(2) == 0 {
				v = `"` + strings.ReplaceAll(name, `"`, `\"`) + `"` // an escape: the slow way
			}
			fmt.Fprintf(b, "%sdisplay_name: %s\n", strings.Repeat(" ", ind), v)
		}})
	}
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	// The fields at their column; the first on the line of the '-'.
	extra := rng.IntN(2)
	col := ind + 2 + extra
	for k, f := range fields {
		if k > 0 {
			g.blank(b)
		}
		start := b.Len()
		f.write(col)
		if k == 0 {
			copy(b.Bytes()[start:], strings.Repeat(" ", ind)+"-"+strings.Repeat(" ", 1+extra))
		}
	}
}

// flowDeployment writes a deployment as one flow mapping.
func (g *gen) flowDeployment(b *bytes.Buffer, ind, i int) {
	rng := g.rng
	gens := []string{"blue", "green"}[:1+rng.IntN(2)]
	serving := []string{gens[0] + ": " + g.pick(1, 100)}
	if len(gens) > 1 {
		serving = append(serving, gens[1]+": "+g.pick(0, 10))
	}
	var instances []string
	for j := range 1 + rng.IntN(2) {
		instances = append(instances, fmt.Sprintf("{id: i-%d, addr: %s, zone: %s, generation: %s}",
			j, g.pick("127.0.0.1:1", `"[::1]:8"`, "h.internal:80"), g.pick("zone-a", "zone-c"), gens[rng.IntN(len(gens))]))
	}
	fields := []string{
		"id: " + g.scalar(fmt.Sprintf("%016x", 0xf000+i)),
		"kind: " + g.pick("es", "kb"),
		"serving: {" + strings.Join(serving, ", ") + "}",
		"instances: [" + strings.Join(instances, ", ") + "]",
	}
	if rng.IntN(2) == 0 {
		fields = append(fields, "aliases: "+g.pick("[]", "~", fmt.Sprintf("[f%d]", i), fmt.Sprintf("[f%d, 'g%d']", i, i)))
	}
	if rng.IntN(2) == 0 {
		fields = append(fields, "display_name: "+g.scalar(g.pick("Search", "x: y", "x:y", "a#b", "~", "it's", "a b", "[x]", "x}")))
	}
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	fmt.Fprintf(b, "%s- {%s}%s\n", strings.Repeat(" ", ind), strings.Join(fields, ", "), g.comment())
}

func (g *gen) instance(b *bytes.Buffer, ind, j int, gn string) {
	rng := g.rng
	kv := [][2]string{
		{"id", fmt.Sprintf("i-%d", j)},
		{"addr", g.pick(fmt.Sprintf("127.0.0.1:%d", 19000+j), fmt.Sprintf("\"[::1]:%d\"", 8000+j), fmt.Sprintf("host-%d.internal:80", j))},
		{"zone", g.pick("zone-a", "zone-b", "zone-c")},
		{"generation", gn},
	}
	if rng.IntN(3) == 0 {
		kv = append(kv, [2]string{"maintenance", g.pick("true", "false", "True", "FALSE", "~")})
	}
	rng.Shuffle(len(kv), func(i, j int) { kv[i], kv[j] = kv[j], kv[i] })
	pad := strings.Repeat(" ", ind)
	if rng.IntN(2) == 0 {
		var items []string
		for _, p := range kv {
			items = append(items, p[0]+": "+p[1])
		}
		fmt.Fprintf(b, "%s- {%s}%s\n", pad, strings.Join(items, ", "), g.comment())
		return
	}
	fmt.Fprintf(b, "%s- %s: %s\n", pad, kv[0][0], kv[0][1])
	for _, p := range kv[1:] {
		fmt.Fprintf(b, "%s  %s: %s%s\n", pad, p[0], p[1], g.comment())
	}
}

// tokens are what mutate puts into a file: YAML's indicators and the
// scalars that YAML reads in more than one way.
var tokens = []string{
	"~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "yes", "no", "on", "y",
	"0", "00", "007", "0100", "0x10", "0o7", "0b1", "1_000", "+1", "-1", "-0", "1e3", "1.5", ".5", ".inf",
	"1000000", "1000001", "9999999", "99999999999999999999",
	"''", `""`, "'a''b'", `"a\"b"`, `"a\tb"`, "'a", `"a`, "a #b", "a#b", "a: b", "a:", ":a", "a:b", "-a", "- a", "-",
	"&x a", "*x", "&x", "!!str 1", "!!int 1", "!x", "|", ">", "|\n  a", ">-\n  a\n  b",
	"[a, b]", "{a: 1}", "[]", "{}", "[a,]", "{a: 1,}", "[a", "{a: 1", "{a:1}", "[a: b]", "{a}", "{? a: b}",
	"'", `"`, "#", " #", "?", "? a", "<<", "<<: {a: 1}", "%", "@", "`", ",", "[", "]", "{", "}", ":", ": ",
	"\t", "\r", "\r\n", "\x00", "\x7f", "\xc2\x85", "\u2028", "\ufeff", "\xff", "\xc3", "é", "\u00a0",
	"---", "...", "--- ", "\n---\n", "\n...\n", "\n", "\n\n", " ", "  ", "\n  ", "\n    ", "\n- ", "\n  - ",
	"up", "down", "blue", "green", "i-b", "127.0.0.1:1", "[::1]:8", "::1", "10.0.0.0/8", "2001:db8::/32",
	"es", "kb", "0123456789abcdef", "zone-a", "id", "kind", "serving", "instances", "aliases", "allow",
	"display_name", "maintenance", "zones", "domain", "deployments", "addr", "zone", "generation",
}

// mutate changes data in one random way: a byte, a token, a cut, a line
// repeated, moved or reindented, a value replaced.
func mutate(rng *rand.Rand, data []byte) []byte {
	if len(data) == 0 {
		return []byte(tokens[rng.IntN(len(tokens))])
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	li := rng.IntN(len(lines))
	line := lines[li]
	join := func() []byte { return bytes.Join(lines, nil) }
	tok := tokens[rng.IntN(len(tokens))]
	switch rng.IntN(9) {
	case 0: // a byte
		out := bytes.Clone(data)
		const set = " :-#'\"{}[],&*!|>~\n\t0a"
		out[rng.IntN(len(out))] = set[rng.IntN(len(set))]
		return out
	case 1: // a token inserted
		i := rng.IntN(len(data) + 1)
		return slices.Concat(data[:i], []byte(tok), data[i:])
	case 2: // a cut
		i := rng.IntN(len(data))
		j := min(len(data), i+1+rng.IntN(12))
		return slices.Concat(data[:i], data[j:])
	case 3: // a line repeated
		lines = slices.Insert(lines, li, bytes.Clone(line))
		return join()
	case 4: // a line moved
		lines = slices.Delete(lines, li, li+1)
		lines = slices.Insert(lines, rng.IntN(len(lines)+1), line)
		return join()
	case 5: // a line reindented
		trimmed := bytes.TrimLeft(line, " ")
		ind := max(0, len(line)-len(trimmed)+rng.IntN(5)-2)
		lines[li] = append(bytes.Repeat([]byte(" "), ind), trimmed...)
		return join()
	case 6, 7: // a value replaced: after ": " or in a flow collection
		var idx []int
		for i := 0; i+1 < len(line); i++ {
			if line[i] == ':' && line[i+1] == ' ' || line[i] == ',' || line[i] == '[' || line[i] == '{' {
				idx = append(idx, i+1)
			}
		}
		if len(idx) == 0 {
			return slices.Concat(data, []byte(tok))
		}
		i := idx[rng.IntN(len(idx))]
		for i < len(line) && line[i] == ' ' {
			i++
		}
		j := i
		for j < len(line) && !bytes.ContainsRune([]byte(",}]\n"), rune(line[j])) {
			j++
		}
		lines[li] = slices.Concat(line[:i], []byte(tok), line[j:])
		return join()
	default: // a token in place of a key
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			return slices.Concat(data, []byte("\n"+tok+": x\n"))
		}
		j := i
		for j > 0 && line[j-1] != ' ' && line[j-1] != '{' && line[j-1] != ',' {
			j--
		}
		lines[li] = slices.Concat(line[:j], []byte(tok), line[i:])
		return join()
	}
}

// BenchmarkParseFile parses the figures' routes file at 10 000 and 100 000
// deployments by the fast path (what ParseFile does) and by the yaml.v3
// path (what it did before the fast path), in one run:
//
//	go test -run '^$' -bench ParseFile -benchmem ./routes/routesfile/
func BenchmarkParseFile(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		path := filepath.Join(b.TempDir(), "routes.yaml")
		if err := os.WriteFile(path, figuresFile(n), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, p := range []struct {
			name  string
			parse func(string, []byte) (*routes.Table, error)
		}{{"fast", Parse}, {"yaml.v3", parseYAML}} {
			b.Run(fmt.Sprintf("deployments=%d/%s", n, p.name), func(b *testing.B) {
				for b.Loop() {
					data, err := os.ReadFile(path)
					if err != nil {
						b.Fatal(err)
					}
					t, err := p.parse(path, data)
					if err != nil || t.Len() != n {
						b.Fatalf("parse: %v", err)
					}
				}
			})
		}
	}
}
