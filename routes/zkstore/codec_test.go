package zkstore

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// The znodes keep the bytes that the layout had before the deployment
// spec was shared with the routes file and the stream: the same keys in
// the same order, no id and no instances in a deployment znode, and
// maintenance written even when false.
func TestZnodeEncoding(t *testing.T) {
	spec := &routes.DeploymentSpec{ID: "7f3a9c2e51d04b8e", Kind: "es", Aliases: []string{"prod-search"},
		Allow: []string{"10.0.0.0/8"}, Serving: map[string]int{"green": 10, "blue": 90},
		Instances: []*routes.Instance{{ID: "i-0001", Addr: "127.0.0.1:19201", Zone: "zone-a", Generation: "blue"}}}
	dd := deploymentData(spec)
	dd.PreviousServing = map[string]int{"blue": 100}
	for _, c := range []struct {
		what string
		v    any
		want string
	}{
		{"deployment", deploymentData(spec), `{"kind":"es","aliases":["prod-search"],"allow":["10.0.0.0/8"],"serving":{"blue":90,"green":10}}`},
		{"deployment with previous_serving", dd, `{"kind":"es","aliases":["prod-search"],"allow":["10.0.0.0/8"],"serving":{"blue":90,"green":10},"previous_serving":{"blue":100}}`},
		{"minimal deployment", DeploymentData{DeploymentSpec: routes.DeploymentSpec{Kind: "kb", Serving: map[string]int{"blue": 1}}}, `{"kind":"kb","serving":{"blue":1}}`},
		{"instance", instanceData(spec.Instances[0]), `{"addr":"127.0.0.1:19201","zone":"zone-a","generation":"blue","maintenance":false}`},
		{"instance in maintenance", InstanceData{Instance: routes.Instance{ID: "x", Addr: "h:1", Zone: "z", Generation: "g", Maintenance: true}},
			`{"addr":"h:1","zone":"z","generation":"g","maintenance":true}`},
	} {
		if got := string(encode(c.v)); got != c.want {
			t.Errorf("%s: got %s; want %s", c.what, got, c.want)
		}
	}
}

// A znode is read by the keys it has: unknown keys are ignored, and the
// id and instances come from the layout whatever the znode says of them.
func TestBuildDeploymentFromZnodes(t *testing.T) {
	l := layout{root: DefaultRoot}
	raw := &rawDeployment{
		data:     []byte(`{"id":"ffffffff","kind":"es","serving":{"blue":1},"instances":[{"id":"x"}],"owner":"someone"}`),
		hasInsts: true,
		instances: map[string][]byte{
			"i-2": []byte(`{"id":"y","addr":"127.0.0.1:2","zone":"zone-a","generation":"blue","maintenance":true,"rack":"r1"}`),
			"i-1": []byte(`{"addr":"127.0.0.1:1","zone":"zone-a","generation":"blue","maintenance":false}`),
		},
	}
	d, err := buildDeployment(l, "7f3a9c2e51d04b8e", raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "7f3a9c2e51d04b8e" || len(d.Instances) != 2 || d.Instances[0].ID != "i-1" || d.Instances[1].ID != "i-2" ||
		d.Instances[0].Maintenance || !d.Instances[1].Maintenance {
		t.Errorf("got %+v; instances %+v, %+v", d, d.Instances[0], d.Instances[1])
	}
}

func TestDepDiff(t *testing.T) {
	base := func() DeploymentData {
		return DeploymentData{DeploymentSpec: routes.DeploymentSpec{Kind: "es", Aliases: []string{"a"}, Serving: map[string]int{"blue": 1}}}
	}
	for _, c := range []struct {
		what   string
		change func(d *DeploymentData)
		want   []string
	}{
		{"same", func(d *DeploymentData) {}, nil},
		{"previous_serving only", func(d *DeploymentData) { d.PreviousServing = map[string]int{"green": 1} }, nil},
		{"aliases removed", func(d *DeploymentData) { d.Aliases = []string{} }, []string{"aliases"}},
		{"kind and serving", func(d *DeploymentData) { d.Kind, d.Serving = "kb", map[string]int{"green": 1} }, []string{"kind", "serving"}},
		{"allow", func(d *DeploymentData) { d.Allow = []string{"10.0.0.0/8"} }, []string{"allow"}},
		{"instances are not the znode's", func(d *DeploymentData) { d.Instances = []*routes.Instance{{ID: "i"}} }, nil},
	} {
		have, want := base(), base()
		c.change(&want)
		if got := depDiff(have, want); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q; want %q", c.what, got, c.want)
		}
	}
	none := DeploymentData{DeploymentSpec: routes.DeploymentSpec{Kind: "es", Serving: map[string]int{"blue": 1}}}
	empty := none
	empty.Aliases = []string{}
	if got := depDiff(none, empty); len(got) != 0 {
		t.Errorf("no aliases and an empty list: got %q; want no difference", got)
	}
}

func TestStoredAs(t *testing.T) {
	d := &routes.DeploymentSpec{ID: "aaaaaaaa", Kind: "es", Aliases: []string{"one"}, Serving: map[string]int{"blue": 100}}
	w := encode(deploymentData(d))
	withPrev := deploymentData(d)
	withPrev.PreviousServing = map[string]int{"green": 100}
	other := deploymentData(d)
	other.Serving = map[string]int{"blue": 90}
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
		prev map[string]int
	}{
		{"same", w, true, nil},
		{"with previous_serving", encode(withPrev), true, withPrev.PreviousServing},
		{"other serving", encode(other), false, nil},
		{"spaces", []byte(strings.Replace(string(w), ":", ": ", 1)), false, nil},
		{"unknown field after", []byte(string(w[:len(w)-1]) + `,"x":1}`), false, nil},
		{"cut", w[:len(w)-1], false, nil},
		{"empty", nil, false, nil},
	} {
		prev, ok := storedAs(tc.data, w)
		if ok != tc.ok || !maps.Equal(prev, tc.prev) {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, prev, ok, tc.prev, tc.ok)
		}
	}
}
