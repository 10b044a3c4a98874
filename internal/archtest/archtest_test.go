package archtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImportDirections fails when a package of the module imports across a
// boundary that docs/architecture.md forbids.
func TestImportDirections(t *testing.T) {
	module, pkgs := list(t)
	for _, v := range Check(module, pkgs, Rules) {
		t.Error(v)
	}
}

// TestFileImports fails when a file inside a package crosses a boundary
// that FileRules draws (the request path of package proxy importing
// fasthttp), and checks that the rule catches a file that does.
func TestFileImports(t *testing.T) {
	module, pkgs := list(t)
	for _, v := range CheckFiles(module, pkgs, FileRules) {
		t.Error(v)
	}
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stages.go", "package proxy\n\nimport \"github.com/valyala/fasthttp\"\n\nvar _ fasthttp.RequestHeader\n")
	write("frontend.go", "package proxy\n\nimport \"github.com/valyala/fasthttp\"\n\nvar _ fasthttp.RequestCtx\n")
	write("retry.go", "package proxy\n\nimport \"net/http\"\n\nvar _ = http.MethodGet\n")
	const m = "example.com/sy"
	got := CheckFiles(m, []*Package{{ImportPath: m + "/proxy", Dir: dir, GoFiles: []string{"frontend.go", "retry.go", "stages.go"}}}, FileRules)
	want := []string{"proxy/stages.go imports github.com/valyala/fasthttp: " + FileRules[0].Name}
	if !slices.Equal(got, want) {
		t.Errorf("made-up package:\n got %q\nwant %q", got, want)
	}
}

// TestPackageDocs fails when a package of the module, commands included,
// has no doc comment saying what it is for.
func TestPackageDocs(t *testing.T) {
	module, pkgs := list(t)
	for _, p := range DocProblems(module, pkgs) {
		t.Error(p)
	}
}

func list(t *testing.T) (string, []*Package) {
	t.Helper()
	module, pkgs, err := List("../..")
	if err != nil {
		t.Fatal(err)
	}
	var own int
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		if strings.HasPrefix(p.ImportPath, module+"/") {
			own++
		}
	}
	if own < 3 {
		t.Fatalf("go list found %d packages of %s; want the whole module", own, module)
	}
	return module, pkgs
}

// TestRulesCatchViolations checks each rule against a made-up module, so a
// rule that silently matches nothing is caught.
func TestRulesCatchViolations(t *testing.T) {
	const m = "example.com/sy"
	pkg := func(path string, imports ...string) *Package {
		return &Package{ImportPath: path, Imports: imports}
	}
	for _, tc := range []struct {
		name string
		pkgs []*Package
		want []string
	}{
		{"clean", []*Package{
			pkg(m+"/proxy", m+"/routes", m+"/zones", "net/http"),
			pkg(m+"/proxy/upstream", m+"/routes"),
			pkg(m+"/routes", "time"),
			pkg(m+"/zones", m+"/routes"),
			pkg(m+"/routes/zkstore", "github.com/go-zookeeper/zk"),
			pkg(m+"/loadtest", "net/http"),
			pkg(m+"/loadtest/report", m+"/loadtest"),
			pkg(m+"/cmd/switchyard", m+"/internal/cli"),
			pkg(m+"/internal/cli", m+"/proxy", m+"/routeserver", m+"/routes/zkstore"),
			pkg(m+"/routeserver", m+"/routes", m+"/routes/wire"),
			{ImportPath: m + "/routes/routeclient", Imports: []string{m + "/routes/wire"}, TestImports: []string{m + "/routeserver"}},
			pkg(m+"/internal/yardctl", m+"/controlplane/cutover", m+"/routes/zkstore"),
			pkg(m+"/controlplane/cutover", m+"/routes", m+"/routes/wire", m+"/routes/zkstore"),
			pkg(m+"/routes/wire", m+"/routes"),
			pkg("github.com/go-zookeeper/zk", "net"),
		}, nil},
		{"proxy imports zk through routes", []*Package{
			pkg(m+"/proxy/upstream", m+"/routes"),
			pkg(m+"/routes", "github.com/go-zookeeper/zk"),
			pkg("github.com/go-zookeeper/zk", "net"),
		}, []string{
			m + "/proxy/upstream -> " + m + "/routes -> github.com/go-zookeeper/zk: proxy imports no ZooKeeper client and nothing of routeserver, controlplane or allocator",
			m + "/routes -> github.com/go-zookeeper/zk: the routes model imports no YAML parser and no ZooKeeper client",
		}},
		{"proxy imports controlplane", []*Package{
			pkg(m+"/proxy", m+"/controlplane/api"),
			pkg(m + "/controlplane/api"),
		}, []string{m + "/proxy -> " + m + "/controlplane/api: proxy imports no ZooKeeper client and nothing of routeserver, controlplane or allocator"}},
		{"proxy imports routeserver", []*Package{
			pkg(m+"/proxy", m+"/routeserver"),
			pkg(m + "/routeserver"),
		}, []string{m + "/proxy -> " + m + "/routeserver: proxy imports no ZooKeeper client and nothing of routeserver, controlplane or allocator"}},
		{"routeserver imports proxy", []*Package{
			pkg(m+"/routeserver", m+"/proxy/upstream"),
			pkg(m + "/proxy/upstream"),
		}, []string{m + "/routeserver -> " + m + "/proxy/upstream: routeserver imports nothing of proxy, controlplane or allocator"}},
		{"routeserver imports controlplane", []*Package{
			pkg(m+"/routeserver", m+"/controlplane/cutover"),
			pkg(m + "/controlplane/cutover"),
		}, []string{m + "/routeserver -> " + m + "/controlplane/cutover: routeserver imports nothing of proxy, controlplane or allocator"}},
		{"routes imports routeserver", []*Package{
			pkg(m+"/routes/routeclient", m+"/routeserver"),
			pkg(m + "/routeserver"),
		}, []string{m + "/routes/routeclient -> " + m + "/routeserver: routes and zones import nothing of proxy, routeserver, controlplane, allocator, loadtest or demo"}},
		{"proxy imports allocator", []*Package{
			pkg(m+"/proxy", m+"/allocator"),
			pkg(m + "/allocator"),
		}, []string{m + "/proxy -> " + m + "/allocator: proxy imports no ZooKeeper client and nothing of routeserver, controlplane or allocator"}},
		{"zones imports proxy", []*Package{
			pkg(m+"/zones/health", m+"/proxy/upstream"),
			pkg(m + "/proxy/upstream"),
		}, []string{m + "/zones/health -> " + m + "/proxy/upstream: routes and zones import nothing of proxy, routeserver, controlplane, allocator, loadtest or demo"}},
		{"routes imports allocator", []*Package{
			pkg(m+"/routes", m+"/allocator/agent"),
			pkg(m + "/allocator/agent"),
		}, []string{m + "/routes -> " + m + "/allocator/agent: routes and zones import nothing of proxy, routeserver, controlplane, allocator, loadtest or demo"}},
		{"the routes model parses YAML", []*Package{
			pkg(m+"/routes", "gopkg.in/yaml.v3"),
			pkg(m+"/routes/routesfile", m+"/routes", "gopkg.in/yaml.v3"),
			pkg("gopkg.in/yaml.v3"),
		}, []string{m + "/routes -> gopkg.in/yaml.v3: the routes model imports no YAML parser and no ZooKeeper client"}},
		{"zones imports loadtest", []*Package{
			pkg(m+"/zones", m+"/loadtest"),
			pkg(m + "/loadtest"),
		}, []string{m + "/zones -> " + m + "/loadtest: routes and zones import nothing of proxy, routeserver, controlplane, allocator, loadtest or demo"}},
		{"controlplane imports proxy", []*Package{
			pkg(m+"/controlplane/cutover", m+"/proxy/upstream"),
			pkg(m + "/proxy/upstream"),
		}, []string{m + "/controlplane/cutover -> " + m + "/proxy/upstream: controlplane and allocator import nothing of proxy"}},
		{"allocator imports proxy through a helper", []*Package{
			pkg(m+"/allocator", m+"/internal/sockio"),
			pkg(m+"/internal/sockio", m+"/proxy"),
			pkg(m + "/proxy"),
		}, []string{m + "/allocator -> " + m + "/internal/sockio -> " + m + "/proxy: controlplane and allocator import nothing of proxy"}},
		{"controlplane imports yardctl", []*Package{
			pkg(m+"/controlplane/plan", m+"/internal/yardctl"),
			pkg(m + "/internal/yardctl"),
		}, []string{m + "/controlplane/plan -> " + m + "/internal/yardctl: controlplane imports no command line (internal/cli, internal/yardctl)"}},
		{"loadtest imports routes", []*Package{
			pkg(m+"/loadtest", m+"/routes"),
			pkg(m + "/routes"),
		}, []string{m + "/loadtest -> " + m + "/routes: loadtest imports no other package of the project"}},
		{"test imports cmd", []*Package{
			{ImportPath: m + "/demo", XTestImports: []string{m + "/cmd/yardctl"}},
			pkg(m + "/cmd/yardctl"),
		}, []string{m + "/demo imports " + m + "/cmd/yardctl: nothing imports a cmd/ package"}},
	} {
		got := Check(m, tc.pkgs, Rules)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestDocMatches(t *testing.T) {
	for _, tc := range []struct {
		text, name, dir string
		want            bool
	}{
		{"Package proxy forwards requests.\n", "proxy", "proxy", true},
		{"Package proxy\n", "proxy", "proxy", false},
		{"Package routing does things.\n", "proxy", "proxy", false},
		{"Copyright 2024.\n", "proxy", "proxy", false},
		{"Command switchyard runs the server roles.\n", "main", "switchyard", true},
		{"Switchyard is an L7 proxy.\n", "main", "switchyard", true},
		{"Yardload is a load generator.\n", "main", "switchyard", false},
		{"Package main does things.\n", "main", "switchyard", false},
	} {
		if got := docMatches(tc.text, tc.name, tc.dir); got != tc.want {
			t.Errorf("docMatches(%q, %q, %q) = %v; want %v", tc.text, tc.name, tc.dir, got, tc.want)
		}
	}
}
