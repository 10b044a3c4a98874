package routesfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/routes"
)

// FuzzParseRoutes feeds arbitrary bytes to Parse. Whatever the input:
//
//   - Parse does not panic, and gives the same answer twice;
//   - a refused file gets no table and one *Error whose text is one line
//     starting with the file's name, wrapping ErrInvalid or ErrEmptyTable
//     (never both);
//   - an accepted file is a table that NewTable accepts again from its own
//     parts, whose keys all find their deployment, and that survives being
//     written back as YAML (render) and parsed again unchanged.
//
// Seeds: the golden files of testdata/good and testdata/bad, and
// testdata/fuzz/FuzzParseRoutes.
func FuzzParseRoutes(f *testing.F) {
	for _, pat := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("domain: example.test\ndeployments:\n  - {id: 0a1b2c3d, kind: es, serving: {b: 1}, instances: [{id: i, addr: 'h:1', zone: z, generation: b}]}\n"))

	const name = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := Parse(name, data)
		_, err2 := Parse(name, data)
		if errText(err) != errText(err2) {
			t.Fatalf("Parse is not deterministic: %q, then %q", errText(err), errText(err2))
		}
		if err != nil {
			checkParseError(t, name, tb, err)
			return
		}
		checkTable(t, tb)

		// The table's own parts make the same table.
		again, err := routes.NewTable(tb.Domain, cloneZones(tb.Zones), specs(tb))
		if err != nil {
			t.Fatalf("NewTable refuses the parts of an accepted file: %v", err)
		}
		if got, want := summarize(again), summarize(tb); got != want {
			t.Fatalf("NewTable from the parts:\n%s\nwant:\n%s", got, want)
		}

		// Written back and read again, it is the same table.
		out := render(t, tb)
		back, err := Parse(name, out)
		if err != nil {
			t.Fatalf("the rendered table does not parse: %v\n%s", err, out)
		}
		if got, want := summarize(back), summarize(tb); got != want {
			t.Fatalf("render and parse:\n%s\nwant:\n%s\nrendered:\n%s", got, want, out)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// checkParseError checks what Parse returns for a refused file named name.
func checkParseError(t *testing.T, name string, tb *routes.Table, err error) {
	t.Helper()
	msg := err.Error()
	if tb != nil {
		t.Errorf("Parse returned a table with its error %q", msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error %q is more than one line", msg)
	}
	var e *routes.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q (%T) is not an *routes.Error", msg, err)
	}
	if e.File != name || !strings.HasPrefix(msg, name+":") {
		t.Errorf("error %q does not start with the file name %s", msg, name)
	}
	if e.Line < 0 {
		t.Errorf("error %q has line %d", msg, e.Line)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Errorf("error %q says nothing", msg)
	}
	if invalid, empty := errors.Is(err, routes.ErrInvalid), errors.Is(err, routes.ErrEmptyTable); invalid == empty {
		t.Errorf("error %q: errors.Is routes.ErrInvalid %v, routes.ErrEmptyTable %v; want exactly one", msg, invalid, empty)
	}
}

// checkTable checks the invariants of a table built by the parser.
func checkTable(t *testing.T, tb *routes.Table) {
	t.Helper()
	if tb.Len() == 0 {
		t.Fatal("accepted a file without deployments")
	}
	if tb.Domain != strings.ToLower(tb.Domain) || strings.HasPrefix(tb.Domain, ".") {
		t.Errorf("domain %q is not lowercase without a leading dot", tb.Domain)
	}
	for i, d := range tb.Deployments() {
		if err := routes.ValidateDeployment(&d.DeploymentSpec); err != nil {
			t.Errorf("deployment %s in the table does not validate: %v", d.ID, err)
		}
		if i > 0 && tb.Deployments()[i-1].ID >= d.ID {
			t.Errorf("deployments out of order: %s before %s", tb.Deployments()[i-1].ID, d.ID)
		}
		if tb.Lookup([]byte(d.ID)) != d {
			t.Errorf("Lookup(%s) does not find its deployment", d.ID)
		}
		for _, a := range d.Aliases {
			if k := a + "." + d.Kind; tb.Lookup([]byte(k)) != d {
				t.Errorf("Lookup(%s) does not find deployment %s", k, d.ID)
			}
		}
		if len(d.Eligible) != len(d.Weights) {
			t.Errorf("deployment %s: %d eligible instances, %d weights", d.ID, len(d.Eligible), len(d.Weights))
		}
		var sum uint64
		for _, w := range d.Weights {
			if w == 0 {
				t.Errorf("deployment %s: an eligible instance has weight 0", d.ID)
			}
			sum += w
		}
		if sum != d.TotalWeight {
			t.Errorf("deployment %s: weights sum to %d, TotalWeight %d", d.ID, sum, d.TotalWeight)
		}
		if len(d.AllowNets) != len(d.Allow) {
			t.Errorf("deployment %s: %d allow entries, %d parsed", d.ID, len(d.Allow), len(d.AllowNets))
		}
	}
}

// specs returns the specs of a table's deployments.
func specs(tb *routes.Table) []*routes.DeploymentSpec {
	out := make([]*routes.DeploymentSpec, len(tb.Deployments()))
	for i, d := range tb.Deployments() {
		out[i] = &d.DeploymentSpec
	}
	return out
}

func cloneZones(z map[string]routes.ZoneState) map[string]routes.ZoneState {
	out := make(map[string]routes.ZoneState, len(z))
	for k, v := range z {
		out[k] = v
	}
	return out
}

// render writes a table back as a routes file, in block style, with each
// deployment in its spec's YAML encoding (the keys in their documented
// order), quoting what YAML needs quoted.
func render(t *testing.T, tb *routes.Table) []byte {
	t.Helper()
	type file struct {
		Domain      string                   `yaml:"domain"`
		Zones       map[string]string        `yaml:"zones,omitempty"`
		Deployments []*routes.DeploymentSpec `yaml:"deployments"`
	}
	out := file{Domain: tb.Domain, Zones: map[string]string{}, Deployments: specs(tb)}
	for z, s := range tb.Zones {
		out.Zones[z] = s.String()
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		t.Fatalf("rendering the table: %v", err)
	}
	return b
}
