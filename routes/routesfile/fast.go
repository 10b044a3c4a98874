package routesfile

import (
	"bytes"
	"unicode/utf8"

	"github.com/switchyard/switchyard/routes"
)

// The fast path reads a routes file in the form that routes files are
// written in (docs/routes-file.md and configs/routes.yaml, what
// yaml.Marshal writes of a table, what the figures generate) straight into
// the specs, without yaml.v3's node tree, several times faster and in a
// fraction of the memory. That form is:
//
//   - block mappings and sequences, each line indented with spaces, a
//     sequence as a mapping's value indented or at the key's column;
//   - plain scalars on one line; quoted ones on one line, double-quoted
//     without escapes;
//   - flow mappings and sequences ({...}, [...]) that end on their line;
//   - comments and blank lines anywhere;
//   - keys made of letters, digits, '.', '_' and '-'.
//
// Whatever else it meets (tabs, CRs, anchors, aliases, tags, block and
// multi-line scalars, escapes, quoted keys, document markers, a value
// that YAML would read in another way than the text suggests), and
// whatever is wrong with the file (a key given twice or unknown, a value
// of the wrong type, a deployment that does not validate), it does not
// decide: parseFast returns nil and Parse reads the file with yaml.v3, so
// that every error, and every form outside the fast path's, is what the
// yaml.v3 path says (a differential test and a fuzz target hold the two
// to the same table on what both accept).

// parseFast returns the table of data, or nil when data is not in the
// fast path's form or is not a valid routes file.
func parseFast(data []byte) *routes.Table {
	if !fastChars(data) {
		return nil
	}
	p := &fastParser{b: data, names: make(map[string]string, 64)}
	domain, zones, deps, ok := p.file()
	if !ok || len(deps) == 0 {
		return nil
	}
	b, err := routes.NewBuilder(domain, zones, len(deps))
	if err != nil {
		return nil
	}
	for _, d := range deps {
		if b.Add(d) != nil {
			return nil
		}
	}
	t, err := b.Table()
	if err != nil {
		return nil
	}
	return t
}

// fastChars reports whether data has only characters that the fast path
// reads as yaml.v3 does: printable ASCII, '\n', and UTF-8 encodings of
// printable characters other than YAML's line breaks (U+0085, U+2028,
// U+2029) and the byte order mark. No tab, no CR, no control character.
func fastChars(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			if c < ' ' && c != '\n' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff,
			0xd800 <= r && r <= 0xdfff, r == 0xfffe, r == 0xffff:
			return false
		}
		i += size
	}
	return true
}

// fastParser reads a routes file line by line. The cursor is on the
// current content line (a line that is not blank or a comment): at its
// start, after its indentation, when a block node starts there.
type fastParser struct {
	b      []byte
	i      int // the cursor
	ls, le int // the current line: start, and end (its '\n' or len(b))
	ind    int // its indentation; -1 past the last line
	// names keeps one copy of the names that repeat across deployments
	// (kinds, zones, generations, instance IDs).
	names map[string]string
}

// maxNames bounds how many names are kept once.
const maxNames = 4096

// next moves to the first content line at or after offset from.
func (p *fastParser) next(from int) {
	for from < len(p.b) {
		end := bytes.IndexByte(p.b[from:], '\n')
		if end < 0 {
			end = len(p.b)
		} else {
			end += from
		}
		j := from
		for j < end && p.b[j] == ' ' {
			j++
		}
		if j < end && p.b[j] != '#' {
			p.ls, p.le, p.ind, p.i = from, end, j-from, j
			return
		}
		from = end + 1
	}
	p.ls, p.le, p.ind, p.i = len(p.b), len(p.b), -1, len(p.b)
}

// advance moves to the next content line.
func (p *fastParser) advance() { p.next(p.le + 1) }

func (p *fastParser) spaces() {
	for p.i < p.le && p.b[p.i] == ' ' {
		p.i++
	}
}

// atEnd reports whether the rest of the line, from the cursor (after a
// space or a key's ':'), is empty or a comment.
func (p *fastParser) atEnd() bool {
	return p.i == p.le || p.b[p.i] == '#' && p.b[p.i-1] == ' '
}

// endLine checks that the rest of the line after a value is blank or a
// comment, and moves to the next content line.
func (p *fastParser) endLine() bool {
	j := p.i
	for j < p.le && p.b[j] == ' ' {
		j++
	}
	if j < p.le && (p.b[j] != '#' || j == p.i) {
		return false
	}
	p.advance()
	return true
}

// seqEntry reports whether the current line starts a block sequence
// entry: "- ", or "-" alone.
func (p *fastParser) seqEntry() bool {
	j := p.ls + p.ind
	return p.ind >= 0 && p.b[j] == '-' && (j+1 == p.le || p.b[j+1] == ' ')
}

// form is what a value is written as.
type form int

const (
	formNull     form = iota // nothing: the key's value is null
	formScalar               // a scalar at the cursor
	formFlowMap              // '{' at the cursor
	formFlowSeq              // '[' at the cursor
	formBlockMap             // a mapping on the lines below; the cursor at its first key
	formBlockSeq             // a sequence on the lines below; the cursor at its first '-'
)

// value moves to the value of a key, with the cursor after the key's
// ':' and the spaces after it, and tells its form. In a flow collection
// (flow) the value is at the cursor; in a block mapping at column n it is
// the rest of the line, or else the block on the lines below: indented
// more than n, or a sequence at column n.
func (p *fastParser) value(n int, flow bool) form {
	if !flow && p.atEnd() {
		p.advance()
		switch {
		case p.ind >= 0 && p.ind >= n && p.seqEntry():
			return formBlockSeq
		case p.ind > n:
			return formBlockMap
		}
		return formNull
	}
	if p.i == p.le {
		return formScalar // an empty flow value: scalar refuses it
	}
	switch p.b[p.i] {
	case '{':
		return formFlowMap
	case '[':
		return formFlowSeq
	}
	return formScalar
}

// key reads a mapping's key at the cursor: letters, digits, '.', '_' and
// '-' (not first), then ':' and a space (in a block mapping, or the end
// of the line). The cursor ends after the spaces that follow.
func (p *fastParser) key(flow bool) ([]byte, bool) {
	start := p.i
	for p.i < p.le && nameByte(p.b[p.i]) {
		p.i++
	}
	k := p.b[start:p.i]
	if len(k) == 0 || len(k) > 128 || k[0] == '-' || p.i == p.le || p.b[p.i] != ':' {
		return nil, false
	}
	p.i++
	if p.i < p.le && p.b[p.i] != ' ' || flow && p.i == p.le {
		return nil, false
	}
	p.spaces()
	return k, true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// scalar reads a scalar at the cursor: its value as yaml.v3 gives it, and
// whether it was plain (a plain scalar is resolved: null, true, 100). In
// a block (not flow), it is the rest of the line (up to a comment), and
// the cursor ends after it; in a flow collection it ends before the ','
// or bracket that follows. It refuses what yaml.v3 would read in another
// way than as that text.
func (p *fastParser) scalar(flow bool) (v []byte, plain, ok bool) {
	if p.i == p.le {
		return nil, false, false
	}
	switch p.b[p.i] {
	case '"':
		end := p.i + 1
		for end < p.le && p.b[end] != '"' {
			if p.b[end] == '\\' {
				return nil, false, false
			}
			end++
		}
		if end == p.le {
			return nil, false, false
		}
		v, p.i = p.b[p.i+1:end], end+1
		return v, false, true
	case '\'':
		var out []byte // set when the text has '' for '
		start, end := p.i+1, p.i+1
		for ; ; end++ {
			if end == p.le {
				return nil, false, false
			}
			if p.b[end] != '\'' {
				continue
			}
			if end+1 < p.le && p.b[end+1] == '\'' {
				out = append(append(out, p.b[start:end]...), '\'')
				end++
				start = end + 1
				continue
			}
			break
		}
		p.i = end + 1
		if out != nil {
			return append(out, p.b[start:end]...), false, true
		}
		return p.b[start:end], false, true
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`':
		return nil, false, false
	}
	start, end := p.i, p.i
	if flow {
		for ; end < p.le; end++ {
			c := p.b[end]
			if c == ',' || c == ']' || c == '}' {
				break
			}
			if c == '[' || c == '{' || c == '?' || c == '#' ||
				c == ':' && (end+1 == p.le || isFlowStop(p.b[end+1])) {
				return nil, false, false
			}
		}
		p.i = end
	} else {
		for end < p.le && !(p.b[end] == '#' && p.b[end-1] == ' ') {
			end++
		}
	}
	for end > start && p.b[end-1] == ' ' {
		end--
	}
	v = p.b[start:end]
	if !flow {
		// "a: b" would be a mapping; "a:" a key.
		if bytes.Contains(v, []byte(": ")) || v[len(v)-1] == ':' {
			return nil, false, false
		}
		p.i = end
	}
	return v, true, true
}

// isFlowStop reports whether c after a ':' in a flow collection makes
// the ':' more than part of a plain scalar.
func isFlowStop(c byte) bool {
	switch c {
	case ' ', ',', '[', ']', '{', '}', '?', '#':
		return true
	}
	return false
}

// isNullText reports whether a plain scalar is YAML's null.
func isNullText(v []byte) bool {
	switch string(v) {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// name returns v as a string kept once.
func (p *fastParser) name(v []byte) string {
	if s, ok := p.names[string(v)]; ok {
		return s
	}
	s := string(v)
	if len(p.names) < maxNames {
		p.names[s] = s
	}
	return s
}

// text reads a string value as the yaml.v3 path's str does: null is "",
// anything else its text (a number as written). In a block, the cursor
// ends on the next content line.
func (p *fastParser) text(n int, flow, intern bool) (string, bool) {
	switch p.value(n, flow) {
	case formNull:
		return "", true
	case formScalar:
	default:
		return "", false
	}
	v, plain, ok := p.scalar(flow)
	if !ok || !flow && !p.endLine() {
		return "", false
	}
	switch {
	case plain && isNullText(v):
		return "", true
	case intern:
		return p.name(v), true
	}
	return string(v), true
}

// boolean reads true or false; null is false.
func (p *fastParser) boolean(n int, flow bool) (bool, bool) {
	switch p.value(n, flow) {
	case formNull:
		return false, true
	case formScalar:
	default:
		return false, false
	}
	v, plain, ok := p.scalar(flow)
	if !ok || !plain || !flow && !p.endLine() {
		return false, false
	}
	switch string(v) {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	return false, isNullText(v)
}

// null reads a scalar that must be null, for a collection's value.
func (p *fastParser) null(flow bool) bool {
	v, plain, ok := p.scalar(flow)
	return ok && plain && isNullText(v) && (flow || p.endLine())
}

// mapping reads a mapping, calling field for each key with the cursor at
// its value; field reads the value (in a block, up to the next content
// line) and returns false to give up. In a flow mapping (flow) the cursor
// is at '{' and ends after '}'; in a block mapping at column n it is at
// the first key, and ends on the first content line after the mapping.
func (p *fastParser) mapping(n int, flow bool, field func(k []byte, n int, flow bool) bool) bool {
	if flow {
		p.i++
		p.spaces()
		if p.i < p.le && p.b[p.i] == '}' {
			p.i++
			return true
		}
		for {
			k, ok := p.key(true)
			if !ok || !field(k, n, true) {
				return false
			}
			p.spaces()
			if p.i == p.le {
				return false
			}
			switch p.b[p.i] {
			case '}':
				p.i++
				return true
			case ',':
				p.i++
				p.spaces()
			default:
				return false
			}
		}
	}
	for {
		k, ok := p.key(false)
		if !ok || !field(k, n, false) {
			return false
		}
		switch {
		case p.ind > n:
			return false
		case p.ind < n:
			return true
		}
	}
}

// sequence reads a sequence, calling item for each entry with the cursor
// at it; item reads the entry (in a block, up to the next content line)
// and returns false to give up. In a flow sequence (flow) the cursor is
// at '[' and ends after ']'; in a block sequence at column n it is at the
// first '-', and ends on the first content line after the sequence.
// Entries are on the line of their '-'; item gets the column where an
// entry starts.
func (p *fastParser) sequence(n int, flow bool, item func(c int, flow bool) bool) bool {
	if flow {
		p.i++
		p.spaces()
		if p.i < p.le && p.b[p.i] == ']' {
			p.i++
			return true
		}
		for {
			if !item(0, true) {
				return false
			}
			p.spaces()
			if p.i == p.le {
				return false
			}
			switch p.b[p.i] {
			case ']':
				p.i++
				return true
			case ',':
				p.i++
				p.spaces()
			default:
				return false
			}
		}
	}
	for {
		p.i++ // the '-'
		p.spaces()
		if p.atEnd() {
			return false // the entry on the lines below
		}
		if !item(p.i-p.ls, false) {
			return false
		}
		switch {
		case p.ind > n:
			return false
		case p.ind < n || !p.seqEntry():
			return true
		}
	}
}

// collection moves to a collection value, and reads it with read when
// it is given: null is neither given nor an error.
func (p *fastParser) collection(n int, flow bool, seq bool, read func(n int, flow bool) bool) bool {
	want := formFlowMap
	if seq {
		want = formFlowSeq
	}
	switch f := p.value(n, flow); {
	case f == formNull:
		return true
	case f == formScalar:
		return p.null(flow)
	case f == want:
		return read(n, true) && (flow || p.endLine())
	case !flow && (seq && f == formBlockSeq || !seq && f == formBlockMap):
		return read(p.ind, false)
	}
	return false
}

// file reads the top-level mapping.
func (p *fastParser) file() (domain string, zones map[string]routes.ZoneState, deps []*routes.DeploymentSpec, ok bool) {
	p.next(0)
	if p.ind != 0 {
		return "", nil, nil, false
	}
	var seen uint8
	ok = p.mapping(0, false, func(k []byte, n int, flow bool) bool {
		var bit uint8
		ok := false
		switch string(k) {
		case "domain":
			bit = 1
			domain, ok = p.text(n, flow, false)
		case "zones":
			bit = 2
			zones, ok = p.zones(n, flow)
		case "deployments":
			bit = 4
			ok = p.collection(n, flow, true, func(n int, flow bool) bool {
				return p.sequence(n, flow, func(c int, flow bool) bool {
					d, ok := p.deployment(c, flow)
					deps = append(deps, d)
					return ok
				})
			})
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	return domain, zones, deps, ok && p.ind < 0
}

// zones reads the zones mapping; null is nil.
func (p *fastParser) zones(n int, flow bool) (map[string]routes.ZoneState, bool) {
	var zones map[string]routes.ZoneState
	ok := p.collection(n, flow, false, func(n int, flow bool) bool {
		zones = map[string]routes.ZoneState{}
		return p.mapping(n, flow, func(k []byte, n int, flow bool) bool {
			if _, dup := zones[string(k)]; dup || p.value(n, flow) != formScalar {
				return false
			}
			v, _, ok := p.scalar(flow)
			if !ok || !flow && !p.endLine() {
				return false
			}
			switch string(v) {
			case "up":
				zones[p.name(k)] = routes.ZoneUp
			case "down":
				zones[p.name(k)] = routes.ZoneDown
			default:
				return false
			}
			return true
		})
	})
	return zones, ok
}

// deployment reads one entry of deployments, at column c of its line: a
// block mapping there, or a flow mapping.
func (p *fastParser) deployment(c int, flow bool) (*routes.DeploymentSpec, bool) {
	d := &routes.DeploymentSpec{}
	var seen uint8
	ok := p.object(c, flow, func(k []byte, n int, flow bool) bool {
		var bit uint8
		ok := false
		switch string(k) {
		case "id":
			bit = 1
			d.ID, ok = p.text(n, flow, false)
		case "kind":
			bit = 2
			d.Kind, ok = p.text(n, flow, true)
		case "display_name":
			bit = 4
			d.DisplayName, ok = p.text(n, flow, false)
		case "aliases":
			bit = 8
			d.Aliases, ok = p.texts(n, flow)
		case "allow":
			bit = 16
			d.Allow, ok = p.texts(n, flow)
		case "serving":
			bit = 32
			d.Serving, ok = p.weights(n, flow)
		case "instances":
			bit = 64
			ok = p.collection(n, flow, true, func(n int, flow bool) bool {
				return p.sequence(n, flow, func(c int, flow bool) bool {
					in, ok := p.instance(c, flow)
					d.Instances = append(d.Instances, in)
					return ok
				})
			})
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	return d, ok
}

// instance reads one entry of instances, as deployment does.
func (p *fastParser) instance(c int, flow bool) (*routes.Instance, bool) {
	in := &routes.Instance{}
	var seen uint8
	ok := p.object(c, flow, func(k []byte, n int, flow bool) bool {
		var bit uint8
		ok := false
		switch string(k) {
		case "id":
			bit = 1
			in.ID, ok = p.text(n, flow, true)
		case "addr":
			bit = 2
			in.Addr, ok = p.text(n, flow, false)
		case "zone":
			bit = 4
			in.Zone, ok = p.text(n, flow, true)
		case "generation":
			bit = 8
			in.Generation, ok = p.text(n, flow, true)
		case "maintenance":
			bit = 16
			in.Maintenance, ok = p.boolean(n, flow)
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	return in, ok
}

// object reads a mapping that is an entry of a sequence: in a flow
// sequence, a flow mapping; in a block sequence, where the entry starts
// at column c, a flow mapping that ends the line or a block mapping whose
// keys are at column c.
func (p *fastParser) object(c int, flow bool, field func(k []byte, n int, flow bool) bool) bool {
	if p.i < p.le && p.b[p.i] == '{' {
		return p.mapping(c, true, field) && (flow || p.endLine())
	}
	return !flow && p.mapping(c, false, field)
}

// texts reads a list of strings; null and [] are nil.
func (p *fastParser) texts(n int, flow bool) ([]string, bool) {
	var out []string
	ok := p.collection(n, flow, true, func(n int, flow bool) bool {
		return p.sequence(n, flow, func(_ int, flow bool) bool {
			s, ok := p.text(-1, flow, false)
			out = append(out, s)
			return ok
		})
	})
	return out, ok
}

// weights reads serving, a mapping of generation to weight: plain
// decimal integers without a sign or leading zeros, up to
// routes.MaxWeight. Null is nil.
func (p *fastParser) weights(n int, flow bool) (map[string]int, bool) {
	var m map[string]int
	ok := p.collection(n, flow, false, func(n int, flow bool) bool {
		m = make(map[string]int, 2)
		return p.mapping(n, flow, func(k []byte, n int, flow bool) bool {
			if _, dup := m[string(k)]; dup || p.value(n, flow) != formScalar {
				return false
			}
			v, plain, ok := p.scalar(flow)
			if !ok || !plain || !flow && !p.endLine() {
				return false
			}
			w, ok := weight(v)
			m[p.name(k)] = w
			return ok
		})
	})
	return m, ok
}

// weight returns the value of a plain decimal integer 0 to
// routes.MaxWeight written without a sign, '_' or leading zeros.
func weight(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 7 || v[0] == '0' && len(v) > 1 {
		return 0, false
	}
	w := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		w = w*10 + int(c-'0')
	}
	return w, w <= routes.MaxWeight
}
