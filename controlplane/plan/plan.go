package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/routes"
)

// Limits of a plan.
const (
	MaxZones   = 10  // zones: 1 to MaxZones distinct zones
	MaxPerZone = 100 // per_zone: 1 to MaxPerZone instances in each zone
	// MinMemory is the smallest memory of an instance, the allocators'
	// own minimum.
	MinMemory = registry.MinMemory
	// MaxSpecBytes bounds the spec's JSON encoding. The spec travels in
	// the plan znode and in every assignment; ZooKeeper refuses a znode
	// of more than about 1 MB.
	MaxSpecBytes = 64 << 10
)

// Strategy is how a change of a plan is carried out.
type Strategy string

// The strategies.
const (
	// GrowAndShrink starts the whole new generation beside the old one,
	// cuts over when all of it is healthy, then stops the old one.
	GrowAndShrink Strategy = "grow_and_shrink"
	// Rolling replaces the instances one zone at a time.
	Rolling Strategy = "rolling"
	// DefaultStrategy is the strategy of a plan that names none.
	DefaultStrategy = GrowAndShrink
)

// Plan is a deployment's desired state: what it is (kind, names, traffic
// filter, as routes.DeploymentSpec has them), how many instances of what
// size run where, what the instances are given, and how a change is
// carried out. Operators write it (yardctl plan apply); the constructor
// makes the deployment match it.
//
// Its JSON encoding is its json tags (the admin API, yardctl -o json, and
// the plan znode, which leaves out the deployment: that is the znode's
// name). Its YAML encoding is a plan file (Parse), whose keys are the
// same but for memory, a size ("4GiB") where JSON has memory_bytes.
type Plan struct {
	// Deployment is the deployment's ID: lowercase hex, as routes
	// requires.
	Deployment string `json:"deployment,omitempty"`
	Kind       string `json:"kind"` // kind code: es, kb, apm, fleet, ...
	// DisplayName is what people call the deployment. Empty: none.
	DisplayName string `json:"display_name,omitempty"`
	// Aliases make the deployment reachable as "<alias>.<kind>". Empty:
	// none.
	Aliases []string `json:"aliases,omitempty"`
	// Allow is the traffic filter: IP addresses or CIDR prefixes. Empty:
	// every client may connect.
	Allow []string `json:"allow,omitempty"`
	// Zones is how many distinct zones the instances run in, 1 to
	// MaxZones; PerZone how many instances run in each, 1 to MaxPerZone.
	Zones   int `json:"zones"`
	PerZone int `json:"per_zone"`
	// MemoryBytes is each instance's memory, at least MinMemory.
	MemoryBytes int64 `json:"memory_bytes"`
	// Spec is given to every instance as it is (the version to run, its
	// settings): a JSON object, at most MaxSpecBytes. Empty: none.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Strategy is how a change is carried out. Empty: DefaultStrategy.
	Strategy Strategy `json:"strategy"`
}

// Instances is how many instances the plan asks for.
func (p *Plan) Instances() int { return p.Zones * p.PerZone }

// Validate checks p whole and returns nil or the first problem, in the
// order of the fields, as an *Error wrapping ErrInvalid whose one line
// names the field. The rules:
//   - deployment, kind, display_name, aliases, allow: those of the same
//     fields of a routes.DeploymentSpec (routes.ValidateDeployment);
//   - zones: 1 to MaxZones; per_zone: 1 to MaxPerZone;
//   - memory_bytes: at least MinMemory (16 MiB);
//   - spec: empty, or a JSON object of at most MaxSpecBytes;
//   - strategy: empty, grow_and_shrink or rolling.
func (p *Plan) Validate() error {
	if err := p.validate(); err != nil {
		return err
	}
	return nil
}

func (p *Plan) validate() *Error {
	if err := p.validateRoutes(); err != nil {
		return err
	}
	pre := "deployment " + p.Deployment + ": "
	switch {
	case p.Zones < 1 || p.Zones > MaxZones:
		return invalidf("zones", "%szones %d is out of range 1-%d", pre, p.Zones, MaxZones)
	case p.PerZone < 1 || p.PerZone > MaxPerZone:
		return invalidf("per_zone", "%sper_zone %d is out of range 1-%d", pre, p.PerZone, MaxPerZone)
	case p.MemoryBytes < MinMemory:
		return invalidf("memory_bytes", "%smemory_bytes %d is below the minimum, %d (16 MiB)", pre, p.MemoryBytes, int64(MinMemory))
	}
	if len(p.Spec) > 0 {
		if _, err := canonicalSpec(p.Spec); err != nil {
			return invalidf("spec", "%sspec: %v", pre, err)
		}
		if n := len(p.Spec); n > MaxSpecBytes {
			return invalidf("spec", "%sspec is %d bytes; at most %d", pre, n, MaxSpecBytes)
		}
	}
	switch p.Strategy {
	case "", GrowAndShrink, Rolling:
	default:
		return invalidf("strategy", "%sstrategy %q is not %s or %s", pre, string(p.Strategy), GrowAndShrink, Rolling)
	}
	return nil
}

// Placeholders that make a routes.DeploymentSpec complete, so that
// routes.ValidateDeployment checks the fields a plan shares with it and
// nothing else: a plan has no serving map and no instances (the
// constructor makes those).
var (
	placeholderServing  = map[string]int{"plan": 1}
	placeholderInstance = routes.Instance{ID: "plan", Addr: "127.0.0.1:1", Zone: "plan", Generation: "plan"}
)

// validateRoutes checks the fields of the plan that are a deployment's
// with the routes model's own rules.
func (p *Plan) validateRoutes() *Error {
	in := placeholderInstance
	d := &routes.DeploymentSpec{ID: p.Deployment, Kind: p.Kind, DisplayName: p.DisplayName,
		Aliases: p.Aliases, Allow: p.Allow, Serving: placeholderServing, Instances: []*routes.Instance{&in}}
	err := routes.ValidateDeployment(d)
	if err == nil {
		return nil
	}
	var re *routes.Error
	if !errors.As(err, &re) {
		return &Error{Msg: err.Error()}
	}
	field := re.At.Field
	if field == "id" {
		field = "deployment"
	}
	return &Error{Field: field, Index: re.At.Index, Msg: re.Msg}
}

// canonicalSpec returns spec as a compact JSON object with sorted keys,
// or nil for an empty spec or null.
func canonicalSpec(spec json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(spec)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	switch v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
	default:
		return nil, errors.New("not a JSON object")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// withDefaults returns a copy of a valid p in its stored form: the
// default strategy filled in, empty lists nil, the spec canonical.
func (p *Plan) withDefaults() *Plan {
	q := *p
	if q.Strategy == "" {
		q.Strategy = DefaultStrategy
	}
	if len(q.Aliases) == 0 {
		q.Aliases = nil
	}
	if len(q.Allow) == 0 {
		q.Allow = nil
	}
	q.Aliases, q.Allow = slices.Clone(q.Aliases), slices.Clone(q.Allow)
	q.Spec, _ = canonicalSpec(q.Spec)
	return &q
}

// Equal reports whether p and q ask for the same thing: equal once the
// default strategy is filled in and the specs are compared as JSON
// values. Both must be valid.
func (p *Plan) Equal(q *Plan) bool {
	a, b := p.withDefaults(), q.withDefaults()
	return reflect.DeepEqual(a, b)
}

// DecodeJSON parses and validates a plan in its JSON encoding (one
// object; unknown keys are errors; deployment, kind, zones, per_zone and
// memory_bytes are required). The strategy, when absent, is
// DefaultStrategy. The error is an *Error wrapping ErrInvalid.
func DecodeJSON(data []byte) (*Plan, error) {
	var p Plan
	if err := decodeStrict(data, &p); err != nil {
		return nil, err
	}
	if err := requireKeys(data, "deployment", "kind", "zones", "per_zone", "memory_bytes"); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p.withDefaults(), nil
}

// requireKeys refuses a JSON object (already decoded once) that lacks one
// of keys or has it null.
func requireKeys(data []byte, keys ...string) *Error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return jsonError(err)
	}
	for _, k := range keys {
		if v, ok := m[k]; !ok || string(v) == "null" {
			return invalidf(k, "%s is required", k)
		}
	}
	return nil
}

// decodeStrict decodes one JSON object into v, refusing unknown keys and
// anything after the object, with a message that names the key.
func decodeStrict(data []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Msg: "data after the JSON object"}
	}
	return nil
}

// jsonError turns an encoding/json error into an *Error naming the key.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		field := te.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 && !strings.HasPrefix(field, "spec") {
			field = field[i+1:]
		}
		return invalidf(field, "%s: want %s, got %s", field, jsonType(te.Type), te.Value)
	case errors.As(err, &se):
		return invalidf("", "not JSON: %s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.Is(err, io.EOF):
		return invalidf("", "empty: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("", "not JSON: the object is not complete")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if key, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return invalidf(strings.Trim(key, `"`), "unknown key %s", key)
	}
	return invalidf("", "%s", msg)
}

// jsonType says what a value of a Go type is in JSON.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}
