package routesfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/routes"
)

// ParseFile reads and parses a routes file; see Parse. Errors name path as
// given.
func ParseFile(path string) (*routes.Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses and validates a routes file named name:
//
//	domain: example.test
//	zones:                      # absent zone = up
//	  zone-a: up
//	  zone-b: down
//	deployments:
//	  - id: 7f3a9c2e51d04b8e
//	    kind: es
//	    aliases: [prod-search]
//	    allow: [203.0.113.0/24, 198.51.100.7]  # traffic filter; absent = any client
//	    serving: {blue: 100}    # generation -> weight; weights sum > 0
//	    instances:
//	      - {id: i-0001, addr: 127.0.0.1:19201, zone: zone-a, generation: blue}
//	      - {id: i-0002, addr: 127.0.0.1:19202, zone: zone-b, generation: blue, maintenance: true}
//
// The domain is a DNS name; zone states are up or down; a deployment is a
// routes.DeploymentSpec, its keys the spec's yaml keys, and follows the
// rules of routes.ValidateDeployment; deployment IDs and "<alias>.<kind>"
// keys are unique across the file. Unknown and repeated keys are errors,
// and so are tabs in indentation.
//
// The file is accepted whole or not at all. The error is a *routes.Error
// whose text is one line, "NAME:LINE: what is wrong", wrapping
// routes.ErrInvalid, or routes.ErrEmptyTable for a file without deployments
// (an empty table never replaces a good one). The table's Version, Source
// and LoadedAt are left for the caller to set.
//
// A file in the form routes files are written in is read by a fast path
// (fast.go); anything else, and every file with an error, by yaml.v3,
// which the fast path agrees with.
func Parse(name string, data []byte) (*routes.Table, error) {
	if t := parseFast(data); t != nil {
		return t, nil
	}
	return parseYAML(name, data)
}

// parseYAML is Parse by way of yaml.v3's node tree: slower, and in much
// more memory, than the fast path, but for every input, and with the line
// of every error.
func parseYAML(name string, data []byte) (*routes.Table, error) {
	p := &parser{name: name, pos: positions{top: map[string]int{}, zones: map[string]int{}, deps: map[*routes.DeploymentSpec]*objPos{}}}
	t, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// yamlLine matches the position yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads the single YAML document in data into a table.
func (p *parser) parse(data []byte) (*routes.Table, *routes.Error) {
	if line := tabIndent(data); line > 0 {
		return nil, &routes.Error{Err: routes.ErrInvalid, File: p.name, Line: line, Msg: "tab in indentation (indent with spaces)"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &routes.Error{Err: routes.ErrEmptyTable, File: p.name, Msg: "file is empty"}
		}
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &routes.Error{Err: routes.ErrInvalid, File: p.name, Line: extra.Line, Msg: "more than one YAML document"}
	case !errors.Is(err, io.EOF):
		return nil, p.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil, &routes.Error{Err: routes.ErrEmptyTable, File: p.name, Msg: "file is empty"}
	}
	t, err := p.table(root)
	if err != nil {
		if err.File == "" {
			err.File, err.Line = p.name, p.pos.line(err.At)
		}
		return nil, err
	}
	return t, nil
}

// yamlError turns a yaml.v3 syntax error into NAME:LINE: message.
func (p *parser) yamlError(err error) *routes.Error {
	e := &routes.Error{Err: routes.ErrInvalid, File: p.name, Msg: err.Error()}
	if m := yamlLine.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	} else if len(e.Msg) > 6 && e.Msg[:6] == "yaml: " {
		e.Msg = e.Msg[6:]
	}
	return e
}

// tabIndent returns the 1-based number of the first line whose indentation
// holds a tab, or 0. YAML forbids tabs there, and yaml.v3 says so with
// "found character that cannot start any token".
func tabIndent(data []byte) int {
	line := 1
	for len(data) > 0 {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			end = len(data)
		}
		l := data[:end]
		ws := len(l) - len(bytes.TrimLeft(l, " \t"))
		if ws < len(l) && bytes.IndexByte(l[:ws], '\t') >= 0 {
			return line
		}
		if end < len(data) {
			end++
		}
		data = data[end:]
		line++
	}
	return 0
}

// positions remembers where each part of a parsed file was, so that errors
// found on the values (by the routes model's validation) name a line.
type positions struct {
	top   map[string]int // top-level key -> line of its value
	zones map[string]int // zone name -> line
	deps  map[*routes.DeploymentSpec]*objPos
}

// objPos is where a mapping read into a spec struct was, and its parts.
type objPos struct {
	line   int                       // where the mapping starts
	fields map[string]int            // key -> line of its value
	items  map[string][]int          // key of a list of strings -> line of each element
	keys   map[string]map[string]int // key of a mapping -> line of each of its keys
	elems  map[any]*objPos           // element of a list of mappings (*routes.Instance) -> where it was
}

func newObjPos(line int) *objPos {
	return &objPos{line: line, fields: map[string]int{}, items: map[string][]int{},
		keys: map[string]map[string]int{}, elems: map[any]*objPos{}}
}

// line returns the line of what at refers to: the value if it was given,
// else the enclosing mapping; 0 if unknown.
func (ps *positions) line(at routes.Ref) int {
	if at.Deployment == nil {
		if l := ps.zones[at.Key]; at.Field == "zones" && l > 0 {
			return l
		}
		return ps.top[at.Field]
	}
	dp := ps.deps[at.Deployment]
	if dp == nil {
		return 0
	}
	if at.Instance != nil {
		ip := dp.elems[at.Instance]
		if ip == nil {
			return dp.line
		}
		return ip.lineOf(at)
	}
	return dp.lineOf(at)
}

// lineOf returns the line of the part of op that at refers to: the element
// of a list, the key of a mapping, or the field's value if it was given,
// else op's own.
func (op *objPos) lineOf(at routes.Ref) int {
	if l := op.items[at.Field]; at.Index < len(l) {
		return l[at.Index]
	}
	if l := op.keys[at.Field][at.Key]; l > 0 {
		return l
	}
	if l := op.fields[at.Field]; l > 0 {
		return l
	}
	return op.line
}

// where formats the start of a message about a deployment being parsed,
// before its id has been checked.
func where(id string) string {
	switch {
	case id == "":
		return "deployment: "
	case routes.IsDeploymentID(id):
		return "deployment " + id + ": "
	}
	return fmt.Sprintf("deployment %q: ", id)
}
