package yardctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A deployment's display name, written by apply, is in the store and is
// shown by routes beside the deployment's ID, in the table and in JSON.
func TestRoutesShowsDisplayNames(t *testing.T) {
	t.Parallel()
	_, flags := zkFlags(t)
	yardOK(t, with(flags, "apply", "-f", testdata("good/display-name.yaml"))...)

	out := yardOK(t, with(flags, "routes")...)
	for _, line := range []string{
		"DEPLOYMENT        NAME                             KIND  ALIASES      ALLOW  SERVING   INSTANCE  ZONE    GENERATION  MAINTENANCE  ADDR",
		"0c9e2b7a44f14c53  2024                             kb    -            any    blue=100  i-0001    zone-a  blue        no           127.0.0.1:19301",
		"1d2e3f4a5b6c7d8e  -                                es    -            any    blue=100  i-0001    zone-a  blue        no           127.0.0.1:19401",
		"7f3a9c2e51d04b8e  Production search (EU) — Zürich  es    prod-search  any    blue=100  i-0001    zone-a  blue        no           127.0.0.1:19201",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("routes: no line %q in\n%s", line, out)
		}
	}

	var rj routesJSON
	if err := json.Unmarshal([]byte(yardOK(t, with(flags, "-o", "json", "routes", "prod-search.es")...)), &rj); err != nil {
		t.Fatal(err)
	}
	if len(rj.Deployments) != 1 || rj.Deployments[0].DisplayName != "Production search (EU) — Zürich" {
		t.Errorf("routes -o json: %+v", rj.Deployments)
	}

	// The same file again writes nothing; a new display name alone is a
	// change of the deployment, named as such.
	if out := yardOK(t, with(flags, "apply", "-f", testdata("good/display-name.yaml"))...); out != "no changes (3 deployments unchanged)\n" {
		t.Errorf("second apply: %q", out)
	}
	b, err := os.ReadFile(testdata("good/display-name.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(renamed, []byte(strings.Replace(string(b), "Production search (EU) — Zürich", "Search", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out = zxidRE.ReplaceAllString(yardOK(t, with(flags, "apply", "-f", renamed)...), "0x")
	if want := "updated deployment 7f3a9c2e51d04b8e (display_name)\ndeployments: 0 created, 1 updated, 2 unchanged, 0 deleted; zxid 0x\n"; out != want {
		t.Errorf("apply of a new display name:\n%s\nwant:\n%s", out, want)
	}
}
