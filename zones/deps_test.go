package zones

import (
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// zones is a leaf under the proxy: it must not import the proxy or the
// control plane (DESIGN.md, "Import directions").
func TestImportDirection(t *testing.T) {
	const module = "github.com/switchyard/switchyard/"
	banned := []string{"proxy", "controlplane", "allocator", "cmd", "loadtest"}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := goparser.ParseFile(token.NewFileSet(), f, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range ast.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			for _, b := range banned {
				if path == module+b || strings.HasPrefix(path, module+b+"/") {
					t.Errorf("%s imports %s; zones must not depend on %s", f, path, b)
				}
			}
		}
	}
}
