package wire

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchyard/switchyard/routes"
)

// fastDecoder decodes deployments in the form EncodeDeployment writes
// them (json.Marshal of a routes.DeploymentSpec: its keys in field order,
// no space, the empty optional fields left out), which is what route
// servers send and what the disk copy holds, several times faster than
// json.Unmarshal. Anything else (another key order, a key it does not
// know, an escape in a string or a character json.Marshal escapes,
// serving keys or instances out of order, a number that is not a plain
// integer) is not its to decode: decode says so, and the caller uses
// json.Unmarshal, which gives the same result on what both decode (a
// test holds them to it). So what it decodes is what appendEncoding
// writes again, byte for byte (tests and a fuzz target hold it to
// that too): its caller need not encode it again to know.
//
// What repeats across deployments is kept once per decoder: the names
// (kinds, zones, generations, instance IDs) and the serving maps, which
// the deployments that have the same serving bytes share (a table's
// specs are never modified: see routes.NewTable). Each instance of a
// deployment is in one array, allocated with the others.
type fastDecoder struct {
	b        []byte
	i        int
	intern   map[string]string
	servings map[string]map[string]int // serving's bytes -> the map decoded from them
	recent   [16]string                // names interned lately (see interned)
	insts    []routes.Instance         // scratch for a deployment's instances
	enc      []byte                    // scratch for an encoding (decodeAll)
}

// Bounds of what a fastDecoder keeps once: a table whose names or
// serving maps are all different costs a lookup each, not a cache as
// large as the table.
const (
	maxInterned       = 4096
	maxServing        = 1024
	maxServingKeySize = 256
)

func newFastDecoder() *fastDecoder {
	return &fastDecoder{intern: map[string]string{}, servings: map[string]map[string]int{}}
}

// decode decodes b, or reports false when b is not in the form above.
func (f *fastDecoder) decode(b []byte) (*routes.DeploymentSpec, bool) {
	d := &routes.DeploymentSpec{}
	if !f.decodeInto(b, d) {
		return nil, false
	}
	return d, true
}

// decodeInto decodes b into d, which is empty, or reports false when b
// is not in the form above (d is then partly filled).
func (f *fastDecoder) decodeInto(b []byte, d *routes.DeploymentSpec) bool {
	f.b, f.i = b, 0
	ok := f.byte('{') &&
		f.key("id") && f.str(&d.ID, false) && f.byte(',') &&
		f.key("kind") && f.str(&d.Kind, true) && f.byte(',') &&
		f.optStr("display_name", &d.DisplayName) &&
		f.optList("aliases", &d.Aliases) &&
		f.optList("allow", &d.Allow) &&
		f.key("serving") && f.serving(d) && f.byte(',') &&
		f.key("instances") && f.instances(d) &&
		f.byte('}') && f.i == len(f.b)
	f.b = nil
	return ok
}

func (f *fastDecoder) byte(c byte) bool {
	if f.i < len(f.b) && f.b[f.i] == c {
		f.i++
		return true
	}
	return false
}

// key reads `"name":`.
func (f *fastDecoder) key(name string) bool {
	end := f.i + len(name) + 3
	if end > len(f.b) || f.b[f.i] != '"' || string(f.b[f.i+1:end-2]) != name || f.b[end-2] != '"' || f.b[end-1] != ':' {
		return false
	}
	f.i = end
	return true
}

// peekKey reports whether `"name":` comes next.
func (f *fastDecoder) peekKey(name string) bool {
	end := f.i + len(name) + 3
	return end <= len(f.b) && f.b[f.i] == '"' && string(f.b[f.i+1:end-2]) == name && f.b[end-2] == '"' && f.b[end-1] == ':'
}

// str reads a string without escapes, valid UTF-8 without control
// characters nor what json.Marshal escapes (<, >, &, U+2028, U+2029),
// into *s; interned when asked.
func (f *fastDecoder) str(s *string, intern bool) bool {
	if !f.byte('"') {
		return false
	}
	start := f.i
	ascii := true
	for ; f.i < len(f.b); f.i++ {
		c := f.b[f.i]
		if plainASCII[c] {
			continue
		}
		switch {
		case c == '"':
			raw := f.b[start:f.i]
			f.i++
			if !ascii && !utf8.Valid(raw) {
				return false
			}
			if intern {
				*s = f.interned(raw)
				return true
			}
			*s = string(raw)
			return true
		case c >= 0x80:
			ascii = false
			if c == 0xe2 && f.i+2 < len(f.b) && f.b[f.i+1] == 0x80 && (f.b[f.i+2] == 0xa8 || f.b[f.i+2] == 0xa9) {
				return false // U+2028, U+2029
			}
		default: // below 0x20, or an ASCII byte json.Marshal escapes
			return false
		}
	}
	return false
}

// plainASCII holds the bytes a string json.Marshal writes holds as they
// are, below 0x80: not a control character, '"', '\\', '<', '>' or '&'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// interned returns raw as a string, the same string each time: most
// names of a table are a few (kinds, zones, generations, instance IDs),
// which a small cache indexed by length and end bytes finds without
// hashing; the others are looked up in intern.
func (f *fastDecoder) interned(raw []byte) string {
	k := 0
	if len(raw) > 0 {
		k = (len(raw)*7 + int(raw[0])*3 + int(raw[len(raw)-1])) % len(f.recent)
	}
	if v := f.recent[k]; v == string(raw) {
		return v
	}
	v, ok := f.intern[string(raw)]
	if !ok {
		v = string(raw)
		if len(f.intern) < maxInterned {
			f.intern[v] = v
		}
	}
	f.recent[k] = v
	return v
}

// optStr reads `"name":"…",` when it comes next.
func (f *fastDecoder) optStr(name string, s *string) bool {
	if !f.peekKey(name) {
		return true
	}
	f.key(name)
	return f.str(s, false) && *s != "" && f.byte(',')
}

// optList reads `"name":["…",…],` when it comes next; not empty.
func (f *fastDecoder) optList(name string, l *[]string) bool {
	if !f.peekKey(name) {
		return true
	}
	f.key(name)
	if !f.byte('[') {
		return false
	}
	for {
		var s string
		if !f.str(&s, false) {
			return false
		}
		*l = append(*l, s)
		if f.byte(']') {
			return f.byte(',')
		}
		if !f.byte(',') {
			return false
		}
	}
}

// serving reads the generations' weights: plain integers that fit an
// int. The same bytes decoded before give the same map.
func (f *fastDecoder) serving(d *routes.DeploymentSpec) bool {
	start := f.i
	end := f.objectEnd()
	if end > 0 {
		if m, ok := f.servings[string(f.b[start:end])]; ok {
			d.Serving, f.i = m, end
			return true
		}
	}
	if !f.readServing(d) {
		return false
	}
	if end == f.i && end-start <= maxServingKeySize && len(f.servings) < maxServing {
		f.servings[string(f.b[start:end])] = d.Serving
	}
	return true
}

// objectEnd returns the index after the '}' that ends the object at f.i
// (one without nested values, strings without escapes), or 0.
func (f *fastDecoder) objectEnd() int {
	if f.i >= len(f.b) || f.b[f.i] != '{' {
		return 0
	}
	inString := false
	for j := f.i + 1; j < len(f.b); j++ {
		switch c := f.b[j]; {
		case c == '\\':
			return 0
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			return 0
		case !inString && c == '}':
			return j + 1
		}
	}
	return 0
}

func (f *fastDecoder) readServing(d *routes.DeploymentSpec) bool {
	if !f.byte('{') {
		return false
	}
	d.Serving = map[string]int{}
	if f.byte('}') {
		return true
	}
	prev := ""
	for first := true; ; first = false {
		var gen string
		if !f.str(&gen, true) || !f.byte(':') {
			return false
		}
		if !first && gen <= prev {
			return false // out of json.Marshal's order, or twice
		}
		prev = gen
		start := f.i
		if f.i < len(f.b) && f.b[f.i] == '-' {
			f.i++
		}
		digits := f.i
		for f.i < len(f.b) && f.b[f.i] >= '0' && f.b[f.i] <= '9' {
			f.i++
		}
		if f.i == digits || f.b[digits] == '0' && (f.i-digits > 1 || digits > start) {
			return false // no digits, a leading zero, or -0
		}
		n, err := strconv.Atoi(string(f.b[start:f.i]))
		if err != nil {
			return false
		}
		d.Serving[gen] = n
		if f.byte('}') {
			return true
		}
		if !f.byte(',') {
			return false
		}
	}
}

func (f *fastDecoder) instances(d *routes.DeploymentSpec) bool {
	if !f.byte('[') {
		return false
	}
	d.Instances = []*routes.Instance{}
	if f.byte(']') {
		return true
	}
	f.insts = f.insts[:0]
	for {
		f.insts = append(f.insts, routes.Instance{})
		in := &f.insts[len(f.insts)-1]
		ok := f.byte('{') &&
			f.key("id") && f.str(&in.ID, true) && f.byte(',') &&
			f.key("addr") && f.str(&in.Addr, false) && f.byte(',') &&
			f.key("zone") && f.str(&in.Zone, true) && f.byte(',') &&
			f.key("generation") && f.str(&in.Generation, true)
		if !ok {
			return false
		}
		if f.byte(',') {
			if !f.key("maintenance") || !f.lit("true") {
				return false
			}
			in.Maintenance = true
		}
		if !f.byte('}') {
			return false
		}
		if n := len(f.insts); n > 1 && in.ID < f.insts[n-2].ID {
			return false // out of EncodeDeployment's order
		}
		if f.byte(']') {
			all := slices.Clone(f.insts)
			d.Instances = make([]*routes.Instance, len(all))
			for k := range all {
				d.Instances[k] = &all[k]
			}
			return true
		}
		if !f.byte(',') {
			return false
		}
	}
}

func (f *fastDecoder) lit(s string) bool {
	if f.i+len(s) <= len(f.b) && string(f.b[f.i:f.i+len(s)]) == s {
		f.i += len(s)
		return true
	}
	return false
}
