// Package archtest keeps the project's architecture honest: its tests fail
// when a package imports across a forbidden boundary (see the import
// directions in docs/architecture.md) or lacks a package doc comment.
package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Package is the part of "go list -json" output that the checks use.
type Package struct {
	ImportPath   string
	Name         string
	Dir          string
	Standard     bool
	DepOnly      bool
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Module       *struct{ Path string }
	Error        *struct{ Err string }
}

// List runs "go list -deps -json ./..." in dir and returns the module path
// and every package listed: the module's own and all they depend on.
func List(dir string) (module string, pkgs []*Package, err error) {
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -m: %w", err)
	}
	module = strings.TrimSpace(string(out))
	cmd = exec.Command("go", "list", "-e", "-deps", "-json", "./...")
	cmd.Dir = dir
	out, err = cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -deps -json ./...: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(Package)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return module, pkgs, nil
}

// Rule forbids packages From some part of the module to depend, directly
// or not, on packages that Banned matches.
type Rule struct {
	Name string
	// From reports whether the rule applies to the module package whose
	// path relative to the module is rel ("" for the module root).
	From func(rel string) bool
	// Banned reports whether depending on the package path is forbidden.
	// rel is its path relative to the module, and inModule whether it is in
	// the module at all.
	Banned func(path, rel string, inModule bool) bool
	// Direct limits the rule to direct imports, including those of tests.
	Direct bool
}

// Under reports whether rel is dir or inside it.
func Under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

func underAny(rel string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return Under(rel, d) })
}

// Rules are the import directions of the project.
var Rules = []Rule{
	{
		Name: "proxy imports no ZooKeeper client and nothing of routeserver, controlplane or allocator",
		From: func(rel string) bool { return Under(rel, "proxy") },
		Banned: func(path, rel string, inModule bool) bool {
			return Under(path, "github.com/go-zookeeper/zk") || inModule && underAny(rel, "routeserver", "controlplane", "allocator")
		},
	},
	{
		Name: "routeserver imports nothing of proxy, controlplane or allocator",
		From: func(rel string) bool { return Under(rel, "routeserver") },
		Banned: func(_, rel string, inModule bool) bool {
			return inModule && underAny(rel, "proxy", "controlplane", "allocator")
		},
	},
	{
		Name: "routes and zones import nothing of proxy, routeserver, controlplane, allocator, loadtest or demo",
		From: func(rel string) bool { return underAny(rel, "routes", "zones") },
		Banned: func(_, rel string, inModule bool) bool {
			return inModule && underAny(rel, "proxy", "routeserver", "controlplane", "allocator", "loadtest", "demo")
		},
	},
	{
		// The model is what every source, codec and reader shares; the
		// routes file's parser and the store live in packages of their own.
		Name: "the routes model imports no YAML parser and no ZooKeeper client",
		From: func(rel string) bool { return rel == "routes" },
		Banned: func(path, _ string, _ bool) bool {
			return Under(path, "gopkg.in/yaml.v3") || Under(path, "github.com/go-zookeeper/zk")
		},
	},
	{
		Name: "controlplane and allocator import nothing of proxy",
		From: func(rel string) bool { return underAny(rel, "controlplane", "allocator") },
		Banned: func(_, rel string, inModule bool) bool {
			return inModule && Under(rel, "proxy")
		},
	},
	{
		// Decisions live where a CLI, an API and a plan executor can all
		// call them; a command line calls them, never the other way.
		Name: "controlplane imports no command line (internal/cli, internal/yardctl)",
		From: func(rel string) bool { return Under(rel, "controlplane") },
		Banned: func(_, rel string, inModule bool) bool {
			return inModule && underAny(rel, "internal/cli", "internal/yardctl")
		},
	},
	{
		Name: "loadtest imports no other package of the project",
		From: func(rel string) bool { return Under(rel, "loadtest") },
		Banned: func(_, rel string, inModule bool) bool {
			return inModule && !Under(rel, "loadtest")
		},
	},
	{
		Name:   "nothing imports a cmd/ package",
		From:   func(string) bool { return true },
		Banned: func(_, rel string, inModule bool) bool { return inModule && Under(rel, "cmd") },
		Direct: true,
	},
}

// Check applies rules to the module's packages in pkgs and returns one line
// per violation, naming the import chain.
func Check(module string, pkgs []*Package, rules []Rule) []string {
	byPath := make(map[string]*Package, len(pkgs))
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	relOf := func(path string) (string, bool) {
		if path == module {
			return "", true
		}
		rel, ok := strings.CutPrefix(path, module+"/")
		return rel, ok
	}
	var out []string
	for _, p := range pkgs {
		rel, ok := relOf(p.ImportPath)
		if !ok || p.Standard {
			continue
		}
		for _, r := range rules {
			if !r.From(rel) {
				continue
			}
			banned := func(path string) bool {
				drel, in := relOf(path)
				return path != p.ImportPath && r.Banned(path, drel, in)
			}
			if r.Direct {
				for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
					if banned(imp) {
						out = append(out, fmt.Sprintf("%s imports %s: %s", p.ImportPath, imp, r.Name))
					}
				}
				continue
			}
			if chain := findChain(p.ImportPath, byPath, banned); chain != nil {
				out = append(out, fmt.Sprintf("%s: %s", strings.Join(chain, " -> "), r.Name))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// findChain returns the shortest import chain from start to a package that
// banned matches, or nil.
func findChain(start string, byPath map[string]*Package, banned func(string) bool) []string {
	prev := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := byPath[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if banned(imp) {
				var chain []string
				for at := imp; at != ""; at = prev[at] {
					chain = append(chain, at)
				}
				slices.Reverse(chain)
				return chain
			}
			queue = append(queue, imp)
		}
	}
	return nil
}

// FileRule limits which files of one package (tests aside) may import a
// package: a boundary inside a package, such as the request path of
// package proxy, which its front ends drive.
type FileRule struct {
	Name    string
	Package string   // the package's path relative to the module
	Import  string   // the import path the rule is about
	Allowed []string // the file names that may import it
}

// FileRules are the boundaries inside packages.
var FileRules = []FileRule{
	{
		// The request path works on proxy/head's Request and Response;
		// fasthttp is one front end (and the form package head stores).
		Name:    "in proxy, only the fasthttp front end imports fasthttp",
		Package: "proxy",
		Import:  "github.com/valyala/fasthttp",
		Allowed: []string{"frontend.go", "server.go", "tunnel.go"},
	},
}

// CheckFiles applies rules to the module's packages in pkgs, reading each
// file's imports, and returns one line per file that breaks one.
func CheckFiles(module string, pkgs []*Package, rules []FileRule) []string {
	var out []string
	for _, r := range rules {
		for _, p := range pkgs {
			if p.ImportPath != module+"/"+r.Package {
				continue
			}
			fset := token.NewFileSet()
			for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
				if slices.Contains(r.Allowed, name) {
					continue
				}
				f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
				if err != nil {
					out = append(out, fmt.Sprintf("%s/%s: %v", p.ImportPath, name, err))
					continue
				}
				for _, imp := range f.Imports {
					if strings.Trim(imp.Path.Value, `"`) == r.Import {
						out = append(out, fmt.Sprintf("%s/%s imports %s: %s", r.Package, name, r.Import, r.Name))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
