package routes

import (
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The route model is a leaf: the proxy and the control plane import it,
// never the other way round (DESIGN.md, "Import directions").
func TestImportDirection(t *testing.T) {
	const module = "github.com/switchyard/switchyard/"
	banned := []string{"proxy", "controlplane", "allocator", "cmd", "loadtest", "demo"}
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
					t.Errorf("%s imports %s; routes must not depend on %s", f, path, b)
				}
			}
		}
	}
}
