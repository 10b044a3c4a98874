package routesfile

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/routes"
)

// A deployment is read into a routes.DeploymentSpec field by field, as the
// spec's tags say: the yaml tag gives each field's key, and the fields'
// order is the order of the keys in messages and the order the values are
// read in (so the first problem reported is that of the first field). A
// list or a mapping also has an item tag: what one of its elements is
// called in messages ("alias", "generation", "instance"). How a value is
// read, and what a message says of it, depends on the field's Go type
// only, so a new field of a type below needs no code here.

// specType is how the routes file reads one spec struct.
type specType struct {
	typ    reflect.Type
	fields []specField
	keys   []string // the yaml keys, in field order
}

// specField is one field of a spec struct.
type specField struct {
	key   string
	index int
	kind  fieldKind
	item  string    // lists and mappings: what one element is called
	elem  *specType // a list of mappings: how each element is read
}

// fieldKind is how a field's value is read, by its Go type.
type fieldKind int

const (
	kindText    fieldKind = iota // string: a scalar, taken as written
	kindBool                     // bool: true or false
	kindTexts                    // []string: a list of scalars
	kindWeights                  // map[string]int: item name -> weight 0 to routes.MaxWeight
	kindObjects                  // []*struct: a list of mappings, each read as its own spec struct
)

// deploymentSpec is how a deployment is read.
var deploymentSpec = specOf(reflect.TypeFor[routes.DeploymentSpec]())

// specOf returns how the struct type t is read. It panics on a field that
// has no yaml key, or a list or mapping without an item tag, or whose type
// the routes file cannot read: a mistake in the spec, which every test of
// this package then reports.
func specOf(t reflect.Type) *specType {
	st := &specType{typ: t}
	for i := range t.NumField() {
		sf := t.Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		if key == "" {
			panic(fmt.Sprintf("routesfile: field %s.%s has no yaml key", t.Name(), sf.Name))
		}
		f := specField{key: key, index: i, item: sf.Tag.Get("item")}
		ft := sf.Type
		switch {
		case ft.Kind() == reflect.String:
			f.kind = kindText
		case ft.Kind() == reflect.Bool:
			f.kind = kindBool
		case ft == reflect.TypeFor[[]string]():
			f.kind = kindTexts
		case ft == reflect.TypeFor[map[string]int]():
			f.kind = kindWeights
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Pointer && ft.Elem().Elem().Kind() == reflect.Struct:
			f.kind = kindObjects
			f.elem = specOf(ft.Elem().Elem())
		default:
			panic(fmt.Sprintf("routesfile: field %s.%s: the routes file cannot read a %s", t.Name(), sf.Name, ft))
		}
		if f.kind >= kindTexts && f.item == "" {
			panic(fmt.Sprintf("routesfile: field %s.%s has no item tag", t.Name(), sf.Name))
		}
		st.fields = append(st.fields, f)
		st.keys = append(st.keys, key)
	}
	return st
}

// object reads the mapping n into v, a struct of type st.typ, and records
// where its parts were in pos. Messages start with pre.
func (p *parser) object(n *yaml.Node, pre string, st *specType, v reflect.Value, pos *objPos) *routes.Error {
	f, err := p.fields(n, pre, st.keys)
	if err != nil {
		return err
	}
	for k, val := range f {
		pos.fields[k] = val.Line
	}
	for _, sf := range st.fields {
		if err := p.field(f[sf.key], pre, sf, v.Field(sf.index), pos); err != nil {
			return err
		}
	}
	return nil
}

// field reads the value n (nil when the key is missing) of the field sf
// into v.
func (p *parser) field(n *yaml.Node, pre string, sf specField, v reflect.Value, pos *objPos) *routes.Error {
	what := pre + sf.key
	switch sf.kind {
	case kindText:
		s, err := p.str(n, what)
		if err != nil {
			return err
		}
		v.SetString(s)
	case kindBool:
		if isNull(n) {
			return nil
		}
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return p.errAt(n, "%s must be true or false", what)
		}
		v.SetBool(b)
	case kindTexts:
		elems, err := p.list(n, what)
		if err != nil {
			return err
		}
		for _, e := range elems {
			s, err := p.str(e, pre+sf.item)
			if err != nil {
				return err
			}
			v.Set(reflect.Append(v, reflect.ValueOf(s)))
			pos.items[sf.key] = append(pos.items[sf.key], e.Line)
		}
	case kindWeights:
		lines := map[string]int{}
		pos.keys[sf.key] = lines
		m, err := p.weights(n, what, sf.item, lines)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
	case kindObjects:
		elems, err := p.list(n, what)
		if err != nil {
			return err
		}
		for j, e := range elems {
			if e.Kind != yaml.MappingNode {
				return p.errAt(e, "%s%s %d must be a mapping", pre, sf.item, j+1)
			}
			ep := pre + sf.item
			switch id := peek(e, "id"); {
			case id == "":
				ep += ": "
			case plain(id):
				ep += " " + id + ": "
			default:
				ep += fmt.Sprintf(" %q: ", id)
			}
			elem := reflect.New(sf.elem.typ)
			epos := newObjPos(e.Line)
			pos.elems[elem.Interface()] = epos
			if err := p.object(e, ep, sf.elem, elem.Elem(), epos); err != nil {
				return err
			}
			v.Set(reflect.Append(v, elem))
		}
	}
	return nil
}

// weights reads a mapping of names (what one is called: item) to weights
// 0 to routes.MaxWeight, recording the line of each name in lines; a
// missing or null value is nil. Messages start with what.
func (p *parser) weights(n *yaml.Node, what, item string, lines map[string]int) (map[string]int, *routes.Error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "%s must be a mapping of %s to weight", what, item)
	}
	m := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, "%s: %s must be a string", what, item)
		}
		g := k.Value
		if _, dup := m[g]; dup {
			return nil, p.errAt(k, "%s: %s %q is given twice", what, item, g)
		}
		lines[g] = k.Line
		if isNull(v) || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
			if !isNull(v) && v.Kind == yaml.ScalarNode && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				return nil, p.errAt(v, "%s: %s: weight %q is quoted; write it as a plain integer", what, shown(g), v.Value)
			}
			if !isNull(v) && v.Kind == yaml.ScalarNode && isDigits(strings.TrimPrefix(v.Value, "-")) {
				// Too large for YAML's int: resolved as a float.
				return nil, p.errAt(v, "%s: %s: weight %s is out of range 0-%d", what, shown(g), v.Value, routes.MaxWeight)
			}
			if !isNull(v) && v.Kind == yaml.ScalarNode {
				return nil, p.errAt(v, "%s: %s: weight %q is not an integer", what, shown(g), v.Value)
			}
			return nil, p.errAt(orNode(v, k), "%s: %s: weight is not an integer", what, shown(g))
		}
		var w int64
		if err := v.Decode(&w); err != nil && !isDigits(strings.TrimPrefix(v.Value, "-")) {
			// Tagged !!int but not an integer: !!int "1.5".
			return nil, p.errAt(v, "%s: %s: weight %q is not an integer", what, shown(g), v.Value)
		} else if err != nil || w < 0 || w > routes.MaxWeight {
			return nil, p.errAt(v, "%s: %s: weight %s is out of range 0-%d", what, shown(g), shown(v.Value), routes.MaxWeight)
		}
		m[g] = int(w)
	}
	return m, nil
}
