package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/internal/cmdline"
)

// applyConfigFile reads the YAML config file at path, a mapping of option
// names to values, and applies it to t. Relative paths in it are relative
// to its directory. Every error names path and, when it is about a key or
// value, its line.
func applyConfigFile[T any](path string, opts []*option[T], t *T) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return cmdline.Usagef("--config: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cmdline.Usagef("%s", yamlError(path, err))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return cmdline.Usagef("%s:%d: want a mapping of keys to values", path, root.Line)
	}
	byName := make(map[string]*option[T], len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			return cmdline.Usagef("%s:%d: duplicate key %q (first on line %d)", path, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		o := byName[k.Value]
		if o == nil {
			return cmdline.Usagef("%s:%d: unknown key %q", path, k.Line, k.Value)
		}
		raw, err := scalarValue(o.list, v)
		if err == nil {
			err = o.store(t, raw, filepath.Dir(path))
		}
		if err != nil {
			return cmdline.Usagef("%s:%d: %s: %v", path, v.Line, k.Value, err)
		}
	}
	return nil
}

// scalarValue returns the text of a config value: a scalar, or for a list
// option also a sequence of scalars, joined with commas.
func scalarValue(list bool, v *yaml.Node) (string, error) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		return "", fmt.Errorf("missing value")
	case v.Kind == yaml.ScalarNode:
		return v.Value, nil
	case v.Kind == yaml.SequenceNode && list:
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return "", fmt.Errorf("want a list of values")
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), nil
	case list:
		return "", fmt.Errorf("want a value or a list of values")
	}
	return "", fmt.Errorf("want a single value")
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a yaml.v3 syntax error into one line naming path:line.
func yamlError(path string, err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %s", path, m[1], m[2])
	}
	return fmt.Sprintf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
}
