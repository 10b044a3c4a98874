package zkstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
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

// DeploymentData is the content of <root>/deployments/<id>.
type DeploymentData struct {
	Kind    string   `json:"kind"`
	Aliases []string `json:"aliases,omitempty"`
	// Allow is the traffic filter (routes.Deployment.Allow).
	Allow   []string       `json:"allow,omitempty"`
	Serving map[string]int `json:"serving"`
	// PreviousServing is the serving map before the last change of
	// serving, for a rollback.
	PreviousServing map[string]int `json:"previous_serving,omitempty"`
}

// InstanceData is the content of <root>/deployments/<id>/instances/<instance id>.
type InstanceData struct {
	Addr        string `json:"addr"`
	Zone        string `json:"zone"`
	Generation  string `json:"generation"`
	Maintenance bool   `json:"maintenance"`
}

// RouteServerData is the content of the ephemeral <root>/routeservers/<name>.
type RouteServerData struct {
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
}

// encode returns the JSON of v: one object, no trailing newline.
func encode(v any) []byte {
	b, err := json.Marshal(v)
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
// previous_serving.
func deploymentData(d *routes.DeploymentSpec) DeploymentData {
	return DeploymentData{Kind: d.Kind, Aliases: slices.Clone(d.Aliases), Allow: slices.Clone(d.Allow), Serving: maps.Clone(d.Serving)}
}

func instanceData(in *routes.Instance) InstanceData {
	return InstanceData{Addr: in.Addr, Zone: in.Zone, Generation: in.Generation, Maintenance: in.Maintenance}
}

// sameDeployment reports whether two deployment znodes say the same,
// previous_serving aside.
func sameDeployment(a, b DeploymentData) bool {
	return a.Kind == b.Kind && slices.Equal(a.Aliases, b.Aliases) && slices.Equal(a.Allow, b.Allow) &&
		maps.Equal(a.Serving, b.Serving)
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
	d := &routes.DeploymentSpec{ID: id, Kind: dd.Kind, Aliases: dd.Aliases, Allow: dd.Allow, Serving: dd.Serving}
	ids := slices.Sorted(maps.Keys(raw.instances))
	for _, iid := range ids {
		var in InstanceData
		if err := decode(l.instance(id, iid), raw.instances[iid], &in); err != nil {
			return nil, err
		}
		d.Instances = append(d.Instances, &routes.Instance{
			ID: iid, Addr: in.Addr, Zone: in.Zone, Generation: in.Generation, Maintenance: in.Maintenance,
		})
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
