package zkstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// The JSON of each data znode (docs/zookeeper.md). Readers ignore unknown
// fields; writers write only these.

// ConfigData is the content of <root>/config.
type ConfigData struct {
	Domain string `json:"domain"`
}

// ZoneData is the content of <root>/zones/<zone>: "up" or "down".
type ZoneData struct {
	State string `json:"state"`
}

// DeploymentData is the content of <root>/deployments/<id>: the
// deployment's spec, as its JSON says it (routes.DeploymentSpec), without
// what the layout keeps elsewhere: the id is the znode's name and the
// instances are the znodes under it. ID and Instances are never written;
// a deployment read from the store takes them from the layout, whatever a
// znode holds under those keys.
type DeploymentData struct {
	routes.DeploymentSpec
	// PreviousServing is the serving map before the last change of
	// serving, for a rollback.
	PreviousServing map[string]int `json:"previous_serving,omitempty"`
}

// MarshalJSON writes d's spec and previous_serving, without the id and
// the instances.
func (d DeploymentData) MarshalJSON() ([]byte, error) {
	type spec routes.DeploymentSpec // its fields, without this method
	return json.Marshal(struct {
		spec
		// Fields of the same key at a shallower depth hide the spec's;
		// these are always empty, so never written.
		ID              string         `json:"id,omitempty"`
		Instances       []struct{}     `json:"instances,omitempty"`
		PreviousServing map[string]int `json:"previous_serving,omitempty"`
	}{spec: spec(d.DeploymentSpec), PreviousServing: d.PreviousServing})
}

// AliasData is the content of <root>/aliases/<alias>.<kind>: the
// deployment that holds the key (the alias index).
type AliasData struct {
	Deployment string `json:"deployment"`
}

// InstanceData is the content of <root>/deployments/<id>/instances/<instance
// id>: the instance, as its JSON says it (routes.Instance), without its id,
// which is the znode's name. Maintenance is written even when false, as
// this layout always has.
type InstanceData struct {
	routes.Instance
}

// MarshalJSON writes d's instance without its id, maintenance included.
func (d InstanceData) MarshalJSON() ([]byte, error) {
	type instance routes.Instance // its fields, without this method
	return json.Marshal(struct {
		instance
		ID          string `json:"id,omitempty"` // always empty: hides the instance's
		Maintenance bool   `json:"maintenance"`
	}{instance: instance(d.Instance), Maintenance: d.Maintenance})
}

// RouteServerData is the content of the ephemeral <root>/routeservers/<name>.
type RouteServerData struct {
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
}

// encode returns the JSON of v: one object, no trailing newline.
func encode(v any) []byte {
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		b, err = m.MarshalJSON() // what json.Marshal would write: it is compact
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		// Only maps of strings and plain fields: cannot fail.
		panic(fmt.Sprintf("zkstore: encoding %T: %v", v, err))
	}
	return b
}

// decode parses the JSON object of the znode at path into v. The error
// wraps ErrInvalid and names the path.
func decode(path string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%w: %s: empty, want a JSON object", ErrInvalid, path)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: bad JSON: %s", ErrInvalid, path, oneLine(err.Error()))
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// zoneState parses a zone's state.
func zoneState(path string, data []byte) (routes.ZoneState, error) {
	var z ZoneData
	if err := decode(path, data, &z); err != nil {
		return 0, err
	}
	switch z.State {
	case "up":
		return routes.ZoneUp, nil
	case "down":
		return routes.ZoneDown, nil
	}
	return 0, fmt.Errorf("%w: %s: state %q is not up or down", ErrInvalid, path, z.State)
}

// domainOf parses and checks the config znode.
func domainOf(path string, data []byte) (string, error) {
	var c ConfigData
	if err := decode(path, data, &c); err != nil {
		return "", err
	}
	d := strings.ToLower(c.Domain)
	if err := checkTableParts(d, nil); err != nil {
		return "", fmt.Errorf("%w: %s: %s", ErrInvalid, path, strings.TrimPrefix(err.Error(), "routes: "))
	}
	return d, nil
}

// checkZoneName reports whether a zone znode's name is a valid zone.
func checkZoneName(path, name string) error {
	if err := checkTableParts("example.test", map[string]routes.ZoneState{name: routes.ZoneUp}); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, path, strings.TrimPrefix(err.Error(), "routes: "))
	}
	return nil
}

// probe is a valid deployment that lets checkTableParts ask routes.NewTable
// (the one place with the rules) whether a domain and zones are valid.
var probe = &routes.DeploymentSpec{
	ID: "00000000", Kind: "probe", Serving: map[string]int{"g": 1},
	Instances: []*routes.Instance{{ID: "p", Addr: "127.0.0.1:1", Zone: "z", Generation: "g"}},
}

func checkTableParts(domain string, zones map[string]routes.ZoneState) error {
	_, err := routes.NewTable(domain, maps.Clone(zones), []*routes.DeploymentSpec{probe})
	return err
}

// deploymentData is what a deployment's znode holds, without
// previous_serving. It shares d's slices and maps.
func deploymentData(d *routes.DeploymentSpec) DeploymentData {
	return DeploymentData{DeploymentSpec: *d}
}

func instanceData(in *routes.Instance) InstanceData {
	return InstanceData{Instance: *in}
}

// storedAs reports whether data, a deployment znode's content, is w
// (what encode writes for the deployment, without previous_serving) with
// or without a previous_serving, which it returns. Encoding is
// deterministic and previous_serving comes last, so a znode written by
// this version is told without decoding it whole.
func storedAs(data, w []byte) (prev map[string]int, ok bool) {
	if bytes.Equal(data, w) {
		return nil, true
	}
	const key = `,"previous_serving":`
	if len(w) < 2 || len(data) < len(w)+len(key) || data[len(data)-1] != '}' {
		return nil, false
	}
	body := w[:len(w)-1]
	rest, found := bytes.CutPrefix(data, body)
	if !found {
		return nil, false
	}
	if rest, found = bytes.CutPrefix(rest, []byte(key)); !found {
		return nil, false
	}
	if err := json.Unmarshal(rest[:len(rest)-1], &prev); err != nil || prev == nil {
		return nil, false
	}
	return prev, true
}

// depDiff names the fields of two deployment znodes' content that differ,
// previous_serving aside, by their JSON keys in the spec's order; none
// when they say the same.
func depDiff(have, want DeploymentData) []string {
	have.PreviousServing, want.PreviousServing = nil, nil
	ha, wa := encode(have), encode(want)
	if bytes.Equal(ha, wa) {
		return nil // the common case, told without decoding
	}
	a, b := fieldsOf(ha), fieldsOf(wa)
	var out []string
	for _, k := range specKeys {
		if !bytes.Equal(a[k], b[k]) {
			out = append(out, k)
		}
	}
	return out
}

// specKeys are the JSON keys of routes.DeploymentSpec, in field order.
var specKeys = jsonKeys(reflect.TypeFor[routes.DeploymentSpec]())

// jsonKeys returns the JSON keys of a struct type's fields, in order.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if k, _, _ := strings.Cut(f.Tag.Get("json"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// fieldsOf returns the JSON of each field of a deployment znode's
// content, as encode wrote it.
func fieldsOf(data []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		panic("zkstore: decoding what encode wrote: " + err.Error())
	}
	return m
}

// rawDeployment is a deployment's znodes as read: the deployment's data
// and each instance's, by instance id.
type rawDeployment struct {
	data      []byte
	hasInsts  bool // the instances container exists
	instances map[string][]byte
}

// buildDeployment decodes and validates a deployment read from the store.
// The error is one line naming the znode at fault; it wraps ErrInvalid.
func buildDeployment(l layout, id string, raw *rawDeployment) (*routes.DeploymentSpec, error) {
	p := l.deployment(id)
	var dd DeploymentData
	if err := decode(p, raw.data, &dd); err != nil {
		return nil, err
	}
	if !raw.hasInsts {
		return nil, fmt.Errorf("%w: %s: no instances znode", ErrInvalid, l.instances(id))
	}
	d := &dd.DeploymentSpec
	d.ID, d.Instances = id, nil
	ids := slices.Sorted(maps.Keys(raw.instances))
	for _, iid := range ids {
		var in InstanceData
		if err := decode(l.instance(id, iid), raw.instances[iid], &in); err != nil {
			return nil, err
		}
		in.ID = iid
		d.Instances = append(d.Instances, &in.Instance)
	}
	if err := routes.ValidateDeployment(d); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, p, strings.TrimPrefix(err.Error(), "routes: "))
	}
	return d, nil
}

// aliasKeys returns a deployment's "<alias>.<kind>" keys.
func aliasKeys(d *routes.DeploymentSpec) []string {
	keys := make([]string, len(d.Aliases))
	for i, a := range d.Aliases {
		keys[i] = a + "." + d.Kind
	}
	sort.Strings(keys)
	return keys
}
