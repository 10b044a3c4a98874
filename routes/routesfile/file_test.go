package routesfile

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ (review the diff)")

// summarize renders a table as the text of testdata/good/*.golden: what the
// proxy would see of it, in a stable order.
func summarize(t *routes.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "domain %s\n", t.Domain)
	zones := make([]string, 0, len(t.Zones))
	for z := range t.Zones {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		fmt.Fprintf(&b, "zone %s %s\n", z, t.Zones[z])
	}
	for _, d := range t.Deployments() {
		fmt.Fprintf(&b, "deployment %s kind %s\n", d.ID, d.Kind)
		for _, f := range otherFields(&d.DeploymentSpec) {
			fmt.Fprintf(&b, "  %s\n", f)
		}
		keys := []string{d.ID}
		for _, a := range d.Aliases {
			keys = append(keys, a+"."+d.Kind)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  keys %s\n", strings.Join(keys, " "))
		gens := make([]string, 0, len(d.Serving))
		for g := range d.Serving {
			gens = append(gens, g)
		}
		sort.Strings(gens)
		b.WriteString("  serving")
		for _, g := range gens {
			fmt.Fprintf(&b, " %s=%d", g, d.Serving[g])
		}
		b.WriteString("\n")
		if len(d.AllowNets) > 0 {
			b.WriteString("  allow")
			for _, p := range d.AllowNets {
				fmt.Fprintf(&b, " %s", p)
			}
			b.WriteString("\n")
		}
		for _, in := range d.Instances {
			share := "-"
			for i, e := range d.Eligible {
				if e == in {
					share = fmt.Sprintf("%.2f%%", 100*float64(d.Weights[i])/float64(d.TotalWeight))
				}
			}
			m := ""
			if in.Maintenance {
				m = " maintenance"
			}
			fmt.Fprintf(&b, "  instance %s addr=%s zone=%s generation=%s%s share=%s\n",
				in.ID, in.Addr, in.Zone, in.Generation, m, share)
		}
	}
	return b.String()
}

// summarized are the spec's JSON keys that summarize shows in its own way.
var summarized = []string{"id", "kind", "aliases", "allow", "serving", "instances"}

// otherFields returns "key value" for each other field of d that its JSON
// has, in field order, the value as JSON: a field added to the spec shows
// in the golden files without a change here.
func otherFields(d *routes.DeploymentSpec) []string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	var out []string
	for f := range reflect.TypeFor[routes.DeploymentSpec]().Fields() {
		k, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if v, ok := m[k]; ok && !slices.Contains(summarized, k) {
			out = append(out, k+" "+string(v))
		}
	}
	return out
}

// golden compares got with the file want, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
	}
}

func TestParseGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/good/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Parse(filepath.Base(f), data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", summarize(tb))
		})
	}
}

func TestParseBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/bad/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := Parse(filepath.Base(f), data)
			if err == nil {
				t.Fatalf("Parse = table of %d deployments, nil; want an error", tb.Len())
			}
			if tb != nil {
				t.Errorf("Parse returned a table with its error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is more than one line", msg)
			}
			want := routes.ErrInvalid
			if strings.HasPrefix(filepath.Base(f), "empty-") {
				want = routes.ErrEmptyTable
			}
			if !errors.Is(err, want) {
				t.Errorf("errors.Is(%q, %v) = false", msg, want)
			}
			var re *routes.Error
			if !errors.As(err, &re) || re.File != filepath.Base(f) {
				t.Errorf("error %q is not a *routes.Error naming the file", msg)
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".err", msg+"\n")
		})
	}
}

// Every golden file has its input, so that a renamed case does not leave a
// stale expectation behind.
func TestGoldenFilesHaveInputs(t *testing.T) {
	for _, pat := range []string{"testdata/good/*.golden", "testdata/bad/*.err"} {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			in := strings.TrimSuffix(f, filepath.Ext(f)) + ".yaml"
			if _, err := os.Stat(in); err != nil {
				t.Errorf("%s has no input %s", f, in)
			}
		}
	}
}

func TestParseFile(t *testing.T) {
	if _, err := ParseFile("testdata/good/design-example.yaml"); err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	_, err := ParseFile("testdata/bad/addr-not-hostport.yaml")
	want := `testdata/bad/addr-not-hostport.yaml:10: deployment 7f3a9c2e51d04b8e: instance i-0001: addr "foo" is not host:port`
	if err == nil || err.Error() != want {
		t.Errorf("ParseFile error = %v; want %s", err, want)
	}
	if _, err := ParseFile("testdata/no-such-file.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile of a missing file: got %v; want os.ErrNotExist", err)
	}
}

func TestParseEmptyIsNotInvalid(t *testing.T) {
	// Callers tell "nothing to serve" from "bad input" by the sentinel.
	_, err := Parse("r.yaml", nil)
	if !errors.Is(err, routes.ErrEmptyTable) || errors.Is(err, routes.ErrInvalid) {
		t.Errorf("Parse(empty) = %v; want routes.ErrEmptyTable only", err)
	}
}
