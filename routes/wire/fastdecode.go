package wire

import (
	"strconv"
	"unicode/utf8"

	"github.com/switchyard/switchyard/routes"
)

// fastDecoder decodes deployments in the form EncodeDeployment writes
// them (json.Marshal of a routes.DeploymentSpec: its keys in field order,
// no space, the empty optional fields left out), which is what route
// servers send and what the disk copy holds, several times faster than
// json.Unmarshal. Anything else (another key order, a key it does not
// know, an escape in a string, a number that is not a plain integer) is
// not its to decode: decode says so, and the caller uses
// json.Unmarshal, which gives the same result on what both decode (a
// test holds them to it). The names that repeat across deployments
// (kinds, zones, generations) are kept once per decoder.
type fastDecoder struct {
	b      []byte
	i      int
	intern map[string]string
}

func newFastDecoder() *fastDecoder { return &fastDecoder{intern: map[string]string{}} }

// decode decodes b, or reports false when b is not in the form above.
func (f *fastDecoder) decode(b []byte) (*routes.DeploymentSpec, bool) {
	f.b, f.i = b, 0
	d := &routes.DeploymentSpec{}
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
	if !ok {
		return nil, false
	}
	return d, true
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
// characters, into *s; interned when asked.
func (f *fastDecoder) str(s *string, intern bool) bool {
	if !f.byte('"') {
		return false
	}
	start := f.i
	for ; f.i < len(f.b); f.i++ {
		switch c := f.b[f.i]; {
		case c == '"':
			raw := f.b[start:f.i]
			f.i++
			if !utf8.Valid(raw) {
				return false
			}
			if intern {
				if v, ok := f.intern[string(raw)]; ok {
					*s = v
					return true
				}
				v := string(raw)
				f.intern[v] = v
				*s = v
				return true
			}
			*s = string(raw)
			return true
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
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
// int.
func (f *fastDecoder) serving(d *routes.DeploymentSpec) bool {
	if !f.byte('{') {
		return false
	}
	d.Serving = map[string]int{}
	if f.byte('}') {
		return true
	}
	for {
		var gen string
		if !f.str(&gen, true) || !f.byte(':') {
			return false
		}
		if _, dup := d.Serving[gen]; dup {
			return false
		}
		start := f.i
		if f.i < len(f.b) && f.b[f.i] == '-' {
			f.i++
		}
		digits := f.i
		for f.i < len(f.b) && f.b[f.i] >= '0' && f.b[f.i] <= '9' {
			f.i++
		}
		if f.i == digits || f.b[digits] == '0' && f.i-digits > 1 {
			return false // no digits, or a leading zero
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
	for {
		in := &routes.Instance{}
		ok := f.byte('{') &&
			f.key("id") && f.str(&in.ID, false) && f.byte(',') &&
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
		d.Instances = append(d.Instances, in)
		if f.byte(']') {
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
