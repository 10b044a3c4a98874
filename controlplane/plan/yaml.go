package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlKeys are the keys of a plan file, in the order they are documented
// and read (so the first problem reported is that of the first key).
var yamlKeys = []string{"deployment", "kind", "display_name", "aliases", "allow",
	"zones", "per_zone", "memory", "spec", "strategy"}

// ParseFile reads and parses a plan file; see Parse. Errors name path as
// given.
func ParseFile(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses and validates a plan file named name, one YAML document:
//
//	deployment: 7f3a9c2e51d04b8e
//	kind: es
//	display_name: Production search   # optional
//	aliases: [prod-search]            # optional
//	allow: [10.0.0.0/8]               # optional; absent = any client
//	zones: 3                          # distinct zones, 1 to 10
//	per_zone: 1                       # instances in each zone, 1 to 100
//	memory: 4GiB                      # each instance's; bytes, or KiB, MiB, GiB, TiB
//	spec:                             # optional: given to every instance as JSON
//	  version: 8.13.0
//	  settings: {indices.memory.index_buffer_size: 20%}
//	strategy: grow_and_shrink         # or rolling; absent = grow_and_shrink
//
// The keys are those of the plan's JSON encoding but for memory, which
// is a size where JSON has memory_bytes. Unknown and repeated keys are
// errors, and so is a second document. The values follow Plan.Validate.
//
// The file is accepted whole or not at all. The error is an *Error
// wrapping ErrInvalid, one line: "NAME:LINE: what is wrong".
func Parse(name string, data []byte) (*Plan, error) {
	p := &parser{name: name, fields: map[string]int{}, items: map[string][]int{}}
	pl, err := p.parse(data)
	if err != nil {
		if err.File == "" {
			err.File = name
		}
		if err.Line == 0 {
			err.Line = p.line(err)
		}
		return nil, err
	}
	return pl, nil
}

// parser reads the YAML node tree of a plan file, remembering where each
// value was so that errors found by Validate name a line.
type parser struct {
	name   string
	line0  int              // where the mapping starts
	fields map[string]int   // key -> line of its value
	items  map[string][]int // aliases, allow -> line of each element
}

// line returns the line of what e is about, or the mapping's.
func (p *parser) line(e *Error) int {
	field := e.Field
	if field == "memory_bytes" {
		field = "memory"
	}
	if l := p.items[field]; e.Index < len(l) {
		return l[e.Index]
	}
	if l := p.fields[field]; l > 0 {
		return l
	}
	return p.line0
}

// yamlLine matches the position yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) errAt(n *yaml.Node, field, format string, args ...any) *Error {
	return &Error{File: p.name, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(data []byte) (*Plan, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: p.name, Msg: "file is empty"}
		}
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: p.name, Line: extra.Line, Msg: "more than one YAML document"}
	case !errors.Is(err, io.EOF):
		return nil, p.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil, &Error{File: p.name, Msg: "file is empty"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.errAt(root, "", "a plan must be a mapping with keys %s", strings.Join(yamlKeys, ", "))
	}
	p.line0 = root.Line
	f := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, "", "key must be a string")
		}
		if !slices.Contains(yamlKeys, k.Value) {
			return nil, p.errAt(k, k.Value, "unknown key %q (known: %s)", k.Value, strings.Join(yamlKeys, ", "))
		}
		if _, dup := f[k.Value]; dup {
			return nil, p.errAt(k, k.Value, "key %q is given twice", k.Value)
		}
		f[k.Value] = v
		p.fields[k.Value] = v.Line
		if isNull(v) {
			p.fields[k.Value] = k.Line
		}
	}

	var pl Plan
	var err *Error
	if pl.Deployment, err = p.str(f["deployment"], "deployment"); err != nil {
		return nil, err
	}
	if pl.Kind, err = p.str(f["kind"], "kind"); err != nil {
		return nil, err
	}
	if pl.DisplayName, err = p.str(f["display_name"], "display_name"); err != nil {
		return nil, err
	}
	if pl.Aliases, err = p.strs(f["aliases"], "aliases"); err != nil {
		return nil, err
	}
	if pl.Allow, err = p.strs(f["allow"], "allow"); err != nil {
		return nil, err
	}
	// The fields a plan shares with a deployment first, so that the
	// messages of the rest can name a deployment whose ID is valid.
	if err := pl.validateRoutes(); err != nil {
		return nil, err
	}
	pre := "deployment " + pl.Deployment + ": "
	if pl.Zones, err = p.count(f["zones"], "zones", pre, fmt.Sprintf("1 to %d distinct zones", MaxZones)); err != nil {
		return nil, err
	}
	if pl.PerZone, err = p.count(f["per_zone"], "per_zone", pre, fmt.Sprintf("1 to %d instances in each zone", MaxPerZone)); err != nil {
		return nil, err
	}
	if pl.MemoryBytes, err = p.memory(f["memory"], pre); err != nil {
		return nil, err
	}
	if pl.Spec, err = p.spec(f["spec"], pre); err != nil {
		return nil, err
	}
	s, err := p.str(f["strategy"], "strategy")
	if err != nil {
		return nil, err
	}
	pl.Strategy = Strategy(s)
	if err := pl.validate(); err != nil {
		return nil, err
	}
	return pl.withDefaults(), nil
}

// yamlError turns a yaml.v3 syntax error into NAME:LINE: message.
func (p *parser) yamlError(err error) *Error {
	e := &Error{File: p.name, Msg: err.Error()}
	if m := yamlLine.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	} else {
		e.Msg = strings.TrimPrefix(e.Msg, "yaml: ")
	}
	return e
}

// str returns the text of a scalar, as written; missing or null is "".
func (p *parser) str(n *yaml.Node, key string) (string, *Error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errAt(n, key, "%s must be a string", key)
	}
	return n.Value, nil
}

// strs returns the texts of a list of scalars; missing or null is empty.
func (p *parser) strs(n *yaml.Node, key string) ([]string, *Error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(n, key, "%s must be a list", key)
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		c = deref(c)
		p.items[key] = append(p.items[key], c.Line)
		if isNull(c) || c.Kind != yaml.ScalarNode {
			return nil, p.errAt(c, key, "%s: element %d must be a string", key, i+1)
		}
		out = append(out, c.Value)
	}
	return out, nil
}

// count returns an integer, which is required.
func (p *parser) count(n *yaml.Node, key, pre, what string) (int, *Error) {
	if isNull(n) {
		return 0, &Error{Field: key, Msg: fmt.Sprintf("%s%s is required (%s)", pre, key, what)}
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return 0, p.errAt(n, key, "%s%s must be an integer, got %s", pre, key, shown(n))
	}
	return v, nil
}

// memory returns the memory: an integer (bytes) or a size with a binary
// unit.
func (p *parser) memory(n *yaml.Node, pre string) (int64, *Error) {
	if isNull(n) {
		return 0, &Error{Field: "memory", Msg: pre + "memory is required (e.g. 4GiB)"}
	}
	if n.Kind != yaml.ScalarNode {
		return 0, p.errAt(n, "memory", "%smemory must be a size (e.g. 4GiB), got %s", pre, shown(n))
	}
	size, err := ParseSize(n.Value)
	if err != nil {
		return 0, p.errAt(n, "memory", "%smemory: %v", pre, err)
	}
	if size < MinMemory {
		return 0, p.errAt(n, "memory", "%smemory %s is below the minimum, 16MiB", pre, n.Value)
	}
	return size, nil
}

// sizeUnits are the units a size may have.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}}

// ParseSize parses a byte count: a whole number, optionally followed by
// KiB, MiB, GiB or TiB ("4GiB", "512 MiB", "1073741824").
func ParseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("%q is not a size (want bytes, or a whole number with KiB, MiB, GiB or TiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// spec returns a mapping as a canonical JSON object; missing or null is
// none.
func (p *parser) spec(n *yaml.Node, pre string) (json.RawMessage, *Error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "spec", "%sspec must be a mapping", pre)
	}
	v, err := p.value(n, "spec", pre)
	if err != nil {
		return nil, err
	}
	b, jerr := json.Marshal(v)
	if jerr != nil {
		return nil, p.errAt(n, "spec", "%sspec: %v", pre, jerr)
	}
	if len(b) > MaxSpecBytes {
		return nil, p.errAt(n, "spec", "%sspec is %d bytes as JSON; at most %d", pre, len(b), MaxSpecBytes)
	}
	return b, nil
}

// value converts a YAML node into what encoding/json writes as the same
// value. Scalars keep their YAML type: a plain 8.13.0 is a string, 3 a
// number, true a boolean; a timestamp is a string as written.
func (p *parser) value(n *yaml.Node, path, pre string) (any, *Error) {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, p.errAt(k, "spec", "%s%s: key must be a string", pre, path)
			}
			if _, dup := m[k.Value]; dup {
				return nil, p.errAt(k, "spec", "%s%s: key %q is given twice", pre, path, k.Value)
			}
			v, err := p.value(n.Content[i+1], path+"."+k.Value, pre)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := p.value(c, fmt.Sprintf("%s[%d]", path, i), pre)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, p.errAt(n, "spec", "%s%s: %s is not a boolean", pre, path, shown(n))
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, p.errAt(n, "spec", "%s%s: integer %s is out of range", pre, path, shown(n))
			}
			return json.Number(strconv.FormatInt(i, 10)), nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, p.errAt(n, "spec", "%s%s: %s is not a finite number", pre, path, shown(n))
			}
			return f, nil
		}
		return n.Value, nil
	}
	return nil, p.errAt(n, "spec", "%s%s: unsupported YAML node", pre, path)
}

// shown returns a scalar as a message shows it (quoted), or what the node
// is.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "nothing"
}

// deref follows YAML aliases (*name) to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is missing or an explicit null.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
