package cli

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/routes/routesfile"
)

// configLoaders say how each file in configs/ is loaded. A new file there
// needs a loader here.
var configLoaders = []struct {
	pattern string
	load    func(t *testing.T, path string)
}{
	{"proxy*.yaml", loadProxyConfig},
	{"route-server*.yaml", loadRouteServerConfig},
	{"allocator-kinds*.yaml", loadKindsFile},
	{"allocator*.yaml", loadAllocatorConfig},
	{"routes*.yaml", loadRoutesFile},
}

// proxyKeysShown collects the keys the proxy example configs use; together
// they must show every key.
var proxyKeysShown = map[string]bool{}

// TestConfigsLoad loads every file in configs/ the way its role does.
func TestConfigsLoad(t *testing.T) {
	defer func() {
		var missing []string
		for _, o := range proxyFlags {
			if !proxyKeysShown[o.name] {
				missing = append(missing, o.name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("configs/proxy*.yaml do not show keys %v; the examples show every key", missing)
		}
	}()
	entries, err := os.ReadDir("../../configs")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("configs/ is empty")
	}
	for _, e := range entries {
		if e.IsDir() {
			// configs/bench holds the peer benchmark's nginx and HAProxy
			// configurations; tools/peerbench's tests load those.
			if e.Name() != "bench" {
				t.Errorf("configs/%s: a directory; want only files (or add its files here)", e.Name())
			}
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

// loadProxyConfig parses a proxy config, records the keys it shows, and
// loads the routes file it names.
func loadProxyConfig(t *testing.T, path string) {
	s, err := parseProxyArgs([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if s.Config.Listen == "" || s.Config.ConnectTimeout == 0 {
		t.Errorf("config parsed into %+v; want listen and connect-timeout set", s.Config)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		proxyKeysShown[k] = true
	}
	if s.RoutesFile != "" {
		if _, err := routesfile.ParseFile(s.RoutesFile); err != nil {
			t.Errorf("routes-file %s: %v", s.RoutesFile, err)
		}
	}
}

// loadRouteServerConfig parses a route-server config, which must show every
// key.
func loadRouteServerConfig(t *testing.T, path string) {
	if _, err := parseRouteServerArgs([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for _, o := range routeServerFlags {
		if _, ok := keys[o.name]; !ok {
			t.Errorf("%s does not show key %q", path, o.name)
		}
	}
}

func loadRoutesFile(t *testing.T, path string) {
	table, err := routesfile.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if table.Len() == 0 {
		t.Errorf("%s: no deployments", path)
	}
}

// loadAllocatorConfig parses an allocator config (with the kinds file it
// names) and checks that it shows every key.
func loadAllocatorConfig(t *testing.T, path string) {
	o, err := parseAllocatorArgs([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if o.Config.ID == "" || o.Config.CapacityBytes != 8<<30 || len(o.Config.Kinds) == 0 {
		t.Errorf("%s: loaded %+v", path, o.Config)
	}
	// What the allocator itself checks when it starts, too.
	if _, err := allocator.New(o.Config); err != nil {
		t.Errorf("%s: the allocator refuses it: %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for _, o := range allocatorFlags {
		if _, ok := keys[o.name]; !ok {
			t.Errorf("%s does not show key %q", path, o.name)
		}
	}
}

func loadKindsFile(t *testing.T, path string) {
	kinds, err := readKinds(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) == 0 {
		t.Errorf("%s: no kinds", path)
	}
}
