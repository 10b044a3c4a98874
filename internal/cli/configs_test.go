package cli

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/routes"
)

// configLoaders say how each file in configs/ is loaded. A new file there
// needs a loader here.
var configLoaders = []struct {
	pattern string
	load    func(t *testing.T, path string)
}{
	{"proxy*.yaml", loadProxyConfig},
	{"routes*.yaml", loadRoutesFile},
}

// TestConfigsLoad loads every file in configs/ the way its role does.
func TestConfigsLoad(t *testing.T) {
	entries, err := os.ReadDir("../../configs")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("configs/ is empty")
	}
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("configs/%s: a directory; want only files (or add its files here)", e.Name())
			continue
		}
		path := filepath.Join("../../configs", e.Name())
		loaded := false
		for _, l := range configLoaders {
			if ok, _ := filepath.Match(l.pattern, e.Name()); ok {
				t.Run(e.Name(), func(t *testing.T) { l.load(t, path) })
				loaded = true
				break
			}
		}
		if !loaded {
			t.Errorf("configs/%s: no loader; add one to configLoaders", e.Name())
		}
	}
}

// loadProxyConfig parses a proxy config, checks that it uses every key (it
// is the reference example), and loads the routes file it names.
func loadProxyConfig(t *testing.T, path string) {
	s, err := parseProxyArgs([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Listen == "" || s.cfg.ConnectTimeout == 0 {
		t.Errorf("config parsed into %+v; want listen and connect-timeout set", s.cfg)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, o := range proxyOptions {
		if _, ok := keys[o.name]; !ok {
			missing = append(missing, o.name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not show keys %v; the example config shows every key", path, missing)
	}
	if _, err := routes.ParseFile(s.routesFile); err != nil {
		t.Errorf("routes-file %s: %v", s.routesFile, err)
	}
}

func loadRoutesFile(t *testing.T, path string) {
	table, err := routes.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if table.Len() == 0 {
		t.Errorf("%s: no deployments", path)
	}
}
