package routesfile

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/routes"
)

// topKeys are the keys of the top level of a routes file, in the order they
// are documented. A deployment's are its spec's (fields.go).
var topKeys = []string{"domain", "zones", "deployments"}

// parser turns the YAML node tree of a routes file into a table, checking
// the shape of the input (types, unknown and repeated keys) itself and the
// values with the builder that NewTable uses.
type parser struct {
	name string
	pos  positions
}

// errAt returns a *routes.Error at n's line.
func (p *parser) errAt(n *yaml.Node, format string, args ...any) *routes.Error {
	return &routes.Error{Err: routes.ErrInvalid, File: p.name, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) table(root *yaml.Node) (*routes.Table, *routes.Error) {
	if root.Kind != yaml.MappingNode {
		return nil, p.errAt(root, "file must be a mapping with keys %s", strings.Join(topKeys, ", "))
	}
	f, err := p.fields(root, "", topKeys)
	if err != nil {
		return nil, err
	}
	for k, v := range f {
		p.pos.top[k] = v.Line
	}
	domain, err := p.str(f["domain"], "domain")
	if err != nil {
		return nil, err
	}
	zones, err := p.zones(f["zones"])
	if err != nil {
		return nil, err
	}

	dn := f["deployments"]
	if !isNull(dn) && dn.Kind != yaml.SequenceNode {
		return nil, p.errAt(dn, "deployments must be a list")
	}
	var deps []*yaml.Node
	if dn != nil {
		deps = dn.Content
	}
	b, berr := routes.NewBuilder(domain, zones, len(deps))
	if berr != nil {
		return nil, asError(berr)
	}
	if len(deps) == 0 {
		return nil, p.noDeployments(dn)
	}
	for i, n := range deps {
		d, err := p.deployment(deref(n), i+1)
		if err != nil {
			return nil, err
		}
		if err := b.Add(d); err != nil {
			return nil, asError(err)
		}
	}
	t, berr := b.Table()
	if berr != nil {
		return nil, asError(berr)
	}
	return t, nil
}

// asError returns the *routes.Error that the routes model returns for
// refused input.
func asError(err error) *routes.Error {
	var e *routes.Error
	if errors.As(err, &e) {
		return e
	}
	return &routes.Error{Err: routes.ErrInvalid, Msg: err.Error()}
}

// noDeployments is the error for a file whose deployments are missing or
// empty; n (the value of deployments:) may be nil.
func (p *parser) noDeployments(n *yaml.Node) *routes.Error {
	e := &routes.Error{Err: routes.ErrEmptyTable, File: p.name, Msg: "no deployments"}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

func (p *parser) zones(n *yaml.Node) (map[string]routes.ZoneState, *routes.Error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "zones must be a mapping of zone name to up or down")
	}
	zones := make(map[string]routes.ZoneState, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, "zones: zone name must be a string")
		}
		name := k.Value
		if _, dup := zones[name]; dup {
			return nil, p.errAt(k, "zone %q is given twice", name)
		}
		p.pos.zones[name] = k.Line
		state, err := p.str(v, "zone "+shown(name))
		if err != nil {
			return nil, err
		}
		switch state {
		case "up":
			zones[name] = routes.ZoneUp
		case "down":
			zones[name] = routes.ZoneDown
		default:
			return nil, p.errAt(orNode(v, k), "zone %s: state %q is not up or down", shown(name), state)
		}
	}
	return zones, nil
}

// deployment reads the i-th (1-based) entry of deployments.
func (p *parser) deployment(n *yaml.Node, i int) (*routes.DeploymentSpec, *routes.Error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "deployment %d must be a mapping", i)
	}
	d := &routes.DeploymentSpec{}
	pos := newObjPos(n.Line)
	p.pos.deps[d] = pos
	if err := p.object(n, where(peek(n, "id")), deploymentSpec, reflect.ValueOf(d).Elem(), pos); err != nil {
		return nil, err
	}
	return d, nil
}

// fields returns the values of the mapping n by key, refusing keys that are
// not strings, given twice, or not in known. Messages start with pre.
func (p *parser) fields(n *yaml.Node, pre string, known []string) (map[string]*yaml.Node, *routes.Error) {
	f := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, "%skey must be a string", pre)
		}
		if !slices.Contains(known, k.Value) {
			return nil, p.errAt(k, "%sunknown key %q (known: %s)", pre, k.Value, strings.Join(known, ", "))
		}
		if _, dup := f[k.Value]; dup {
			return nil, p.errAt(k, "%skey %q is given twice", pre, k.Value)
		}
		f[k.Value] = v
	}
	return f, nil
}

// str returns the text of a scalar; a missing or null value is "". A number
// is taken as written (an ID of digits only stays as it is).
func (p *parser) str(n *yaml.Node, what string) (string, *routes.Error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errAt(n, "%s must be a string", what)
	}
	return n.Value, nil
}

// list returns the elements of a sequence; a missing or null value is empty.
func (p *parser) list(n *yaml.Node, what string) ([]*yaml.Node, *routes.Error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(n, "%s must be a list", what)
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out, nil
}

// peek returns the text of key in the mapping n, or "".
func peek(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == key && v.Kind == yaml.ScalarNode && !isNull(v) {
			return v.Value
		}
	}
	return ""
}

// shown returns a name from the input as an error message shows it: as it
// is when it is made of letters, digits, '.', '_' and '-' (as every valid
// name is), else quoted, so that a message stays one line whatever the
// file holds.
func shown(s string) string {
	if plain(s) {
		return s
	}
	return strconv.Quote(s)
}

// deref follows YAML aliases (*name) to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is missing or an explicit null (~, null, or
// nothing after the colon).
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// orNode returns n, or fallback when n is nil.
func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n == nil {
		return fallback
	}
	return n
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// plain reports whether s is made of letters, digits, '.', '_' and '-',
// and so is shown in a message as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}
