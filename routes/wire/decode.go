package wire

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"unsafe"
)

// DecodeMessage decodes a message of the route stream, as json.Unmarshal
// decodes it into a Message (a test holds them to the same result and
// the same errors), but faster on what route servers and the disk copy
// hold: a message as json.Marshal writes it (its keys in field order, or
// in any order, each once, no space between them, space around it) is
// read by hand, and each deployment's JSON, checked, is a slice of b,
// not a copy. The deployments of a route server's message are checked by
// decoding them, for Apply, in the same pass (splitDeployments); others
// are checked without being decoded. Anything else is decoded by
// json.Unmarshal. The message
// keeps b: the caller must not modify it.
func DecodeMessage(b []byte) (*Message, error) {
	if m, ok := decodeFast(b); ok {
		return m, nil
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadMessage reads a message from r to its end and decodes it with
// DecodeMessage: the message's bytes are read once, into one buffer that
// its deployments' JSON share.
func ReadMessage(r io.Reader) (*Message, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return DecodeMessage(b)
}

// msgReader reads the envelope of a message by hand.
type msgReader struct {
	b []byte
	i int
}

// decodeFast decodes b when it is in the form DecodeMessage reads by
// hand, or reports false.
func decodeFast(b []byte) (*Message, bool) {
	r := &msgReader{b: b, i: skipSpace(b, 0)}
	m := &Message{}
	if !r.byte('{') {
		return nil, false
	}
	var seen [10]bool
	if r.byte('}') {
		return m, r.end()
	}
	for {
		key, ok := r.plainString()
		if !ok || !r.byte(':') {
			return nil, false
		}
		k := -1
		switch key {
		case "version":
			k, ok = 0, r.uint(&m.Version)
		case "hash":
			k, ok = 1, r.str(&m.Hash)
		case "full":
			k, ok = 2, r.bool(&m.Full)
		case "base":
			k, ok = 3, r.uint(&m.Base)
		case "base_hash":
			k, ok = 4, r.str(&m.BaseHash)
		case "stale":
			k, ok = 5, r.bool(&m.Stale)
		case "domain":
			k, ok = 6, r.str(&m.Domain)
		case "zones":
			k, ok = 7, r.zones(m)
		case "deployments":
			k, ok = 8, r.deployments(m)
		case "deleted":
			k, ok = 9, r.deleted(m)
		}
		if k < 0 || !ok || seen[k] {
			return nil, false
		}
		seen[k] = true
		if r.byte('}') {
			return m, r.end()
		}
		if !r.byte(',') {
			return nil, false
		}
	}
}

// end reports whether only space follows (a message written with a
// newline after it, as json.Encoder writes one).
func (r *msgReader) end() bool { return skipSpace(r.b, r.i) == len(r.b) }

func (r *msgReader) byte(c byte) bool {
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

func (r *msgReader) lit(s string) bool {
	if bytes.HasPrefix(r.b[r.i:], []byte(s)) {
		r.i += len(s)
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters; it
// is a slice of b, valid until b changes.
func (r *msgReader) plainString() (string, bool) {
	if !r.byte('"') {
		return "", false
	}
	for j := r.i; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[r.i:j]
			r.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// str reads a string without escapes, in valid UTF-8 (json.Unmarshal
// replaces what is not).
func (r *msgReader) str(s *string) bool {
	v, ok := r.plainString()
	if !ok || !validUTF8(v) {
		return false
	}
	*s = v
	return true
}

func validUTF8(s string) bool {
	for _, c := range s {
		if c == '\uFFFD' {
			return false // an invalid byte, or U+FFFD itself: either way json.Unmarshal's
		}
	}
	return true
}

// uint reads a plain non-negative integer that fits a uint64.
func (r *msgReader) uint(v *uint64) bool {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	if r.i == start || r.b[start] == '0' && r.i-start > 1 {
		return false
	}
	n, err := strconv.ParseUint(string(r.b[start:r.i]), 10, 64)
	if err != nil {
		return false
	}
	*v = n
	return true
}

func (r *msgReader) bool(v *bool) bool {
	switch {
	case r.lit("true"):
		*v = true
	case r.lit("false"):
		*v = false
	default:
		return false
	}
	return true
}

// zones reads an object of plain strings.
func (r *msgReader) zones(m *Message) bool {
	if r.lit("null") {
		m.Zones = nil
		return true
	}
	if !r.byte('{') {
		return false
	}
	m.Zones = map[string]string{}
	if r.byte('}') {
		return true
	}
	for {
		var k, v string
		if !r.str(&k) || !r.byte(':') || !r.str(&v) {
			return false
		}
		if _, dup := m.Zones[k]; dup {
			return false // json.Unmarshal's: the last one wins
		}
		m.Zones[k] = v
		if r.byte('}') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// deployments reads an array of objects, each checked and kept as a
// slice of b.
func (r *msgReader) deployments(m *Message) bool {
	if r.lit("null") {
		m.Deployments = nil
		return true
	}
	if !r.byte('[') {
		return false
	}
	if r.byte(']') {
		m.Deployments = []json.RawMessage{}
		return true
	}
	if r.i >= len(r.b) || r.b[r.i] != '{' {
		return false
	}
	if pieces, end, ok := splitDeployments(r.b, r.i); ok {
		// Each piece decoded is valid JSON: the split was right, and
		// the deployments are checked (and decoded, for Apply) in one
		// pass instead of two.
		if deps, err := decodeAll(pieces, true); err == nil {
			m.Deployments, m.decoded, r.i = pieces, newDecodedDeps(pieces, deps), end
			return r.byte(']')
		}
	}
	// About 300 bytes a deployment: one allocation for most tables.
	m.Deployments = make([]json.RawMessage, 0, (len(r.b)-r.i)/256+1)
	for {
		if r.i >= len(r.b) || r.b[r.i] != '{' {
			return false
		}
		end, ok := skipValue(r.b, r.i, 0)
		if !ok {
			return false
		}
		m.Deployments = append(m.Deployments, json.RawMessage(r.b[r.i:end:end]))
		r.i = end
		if r.byte(']') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// splitDeployments cuts an array of deployments in the form route
// servers write (each deployment's keys begin with "id", then "kind"),
// whose first deployment begins at b[i], where one deployment ends and
// the next begins: at `},{"id":"<id>","kind":"`. That cannot be inside
// a string, but it is not checked otherwise: the pieces are one whole
// deployment each only if every piece then decodes (a piece cut inside
// a deployment, or holding two, is not valid JSON). The last piece is
// checked here, to find where the array ends: end is after it.
func splitDeployments(b []byte, i int) (pieces []json.RawMessage, end int, ok bool) {
	const sep, next = `},{"id":"`, `","kind":"`
	// About 300 bytes a deployment: one allocation for most tables.
	pieces = make([]json.RawMessage, 0, (len(b)-i)/256+1)
	start := i
	for j := i; ; {
		k := bytes.Index(b[j:], []byte(sep))
		if k < 0 {
			break
		}
		k += j
		id := k + len(sep)
		q := bytes.IndexByte(b[id:], '"')
		if q < 0 {
			break
		}
		if q += id; !bytes.HasPrefix(b[q:], []byte(next)) {
			j = id // between two instances, or not this form
			continue
		}
		pieces = append(pieces, json.RawMessage(b[start:k+1:k+1]))
		start, j = k+2, q
	}
	if end, ok = skipValue(b, start, 0); !ok {
		return nil, 0, false
	}
	return append(pieces, json.RawMessage(b[start:end:end])), end, true
}

// decodedDeps are a message's deployments as DecodeMessage decoded
// them, and where each one's JSON was: Apply uses them while the
// message's Deployments are still those.
type decodedDeps struct {
	from []rawAt
	deps []*stateDep
}

type rawAt struct {
	p *byte
	n int
}

func newDecodedDeps(raw []json.RawMessage, deps []*stateDep) *decodedDeps {
	from := make([]rawAt, len(raw))
	for i, r := range raw {
		from[i] = rawAt{unsafe.SliceData(r), len(r)}
	}
	return &decodedDeps{from: from, deps: deps}
}

// decodedDeployments returns m's deployments decoded: those DecodeMessage
// decoded, if m's Deployments are still the JSON it decoded them from,
// else decoded now. The result is only read: a message applied twice
// gives both states the same deployments, which tables copy once one
// holds them (routes.NewTableOf).
func (m *Message) decodedDeployments() ([]*stateDep, error) {
	if c := m.decoded; c != nil && len(c.from) == len(m.Deployments) {
		same := true
		for i, r := range m.Deployments {
			if c.from[i] != (rawAt{unsafe.SliceData(r), len(r)}) {
				same = false
				break
			}
		}
		if same {
			return c.deps, nil
		}
	}
	return decodeAll(m.Deployments, false)
}

// deleted reads an array of plain strings.
func (r *msgReader) deleted(m *Message) bool {
	if r.lit("null") {
		m.Deleted = nil
		return true
	}
	if !r.byte('[') {
		return false
	}
	m.Deleted = []string{}
	if r.byte(']') {
		return true
	}
	for {
		var s string
		if !r.str(&s) {
			return false
		}
		m.Deleted = append(m.Deleted, s)
		if r.byte(']') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// maxDepth bounds the nesting skipValue checks; a value nested deeper
// is json.Unmarshal's to judge (it has a limit of its own).
const maxDepth = 64

// skipValue checks the JSON value that starts at b[i] (after no space),
// nested depth deep, as json.Valid would, and returns the index after
// it, or false.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i, ok = skipString(b, i); !ok {
				return 0, false
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, skipSpace(b, i+1), depth+1); !ok {
				return 0, false
			}
			switch i = skipSpace(b, i); {
			case i < len(b) && b[i] == '}':
				return i + 1, true
			case i < len(b) && b[i] == ',':
				i = skipSpace(b, i+1)
			default:
				return 0, false
			}
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			switch i = skipSpace(b, i); {
			case i < len(b) && b[i] == ']':
				return i + 1, true
			case i < len(b) && b[i] == ',':
				i = skipSpace(b, i+1)
			default:
				return 0, false
			}
		}
	case c == '"':
		return skipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(b[i:], []byte(lit)) {
			return i + len(lit), true
		}
	}
	return 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString checks the string that starts at b[i] ('"').
func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if i++; i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// skipNumber checks the number that starts at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	return i, true
}
