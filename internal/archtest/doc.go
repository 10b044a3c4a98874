package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// DocProblems returns one line for each of the module's packages in pkgs
// that has no package doc comment. A library's comment starts "Package
// <name> "; a command's starts "Command " or with the command's name
// ("Switchyard is ...").
func DocProblems(module string, pkgs []*Package) []string {
	var out []string
	for _, p := range pkgs {
		if p.Standard || !(p.ImportPath == module || strings.HasPrefix(p.ImportPath, module+"/")) {
			continue
		}
		files := slices.Concat(p.GoFiles, p.CgoFiles)
		if len(files) == 0 {
			files = slices.Concat(p.TestGoFiles, p.XTestGoFiles)
		}
		ok, err := hasDoc(p, files)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: %v", p.ImportPath, err))
		case !ok && p.Name == "main":
			out = append(out, fmt.Sprintf("%s: no command doc comment (want %q or %q in one file)",
				p.ImportPath, "// Command "+filepath.Base(p.Dir)+" ...", "// "+title(filepath.Base(p.Dir))+" ..."))
		case !ok:
			out = append(out, fmt.Sprintf("%s: no package doc comment (want %q in one file, e.g. doc.go)",
				p.ImportPath, "// Package "+p.Name+" ..."))
		}
	}
	return out
}

func hasDoc(p *Package, files []string) (bool, error) {
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return false, err
		}
		if f.Doc == nil {
			continue
		}
		if docMatches(f.Doc.Text(), f.Name.Name, filepath.Base(p.Dir)) {
			return true, nil
		}
	}
	return false, nil
}

// docMatches reports whether text is a doc comment of package name in
// directory dir that says something after the package's name.
func docMatches(text, name, dir string) bool {
	words := strings.Fields(text)
	if name == "main" {
		return len(words) >= 2 && (words[0] == "Command" || strings.EqualFold(words[0], dir))
	}
	return len(words) >= 3 && words[0] == "Package" && words[1] == name
}

func title(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
