package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerConfigs renders every template in configs/bench, as a run does,
// and, when nginx and haproxy are installed, has them check the result
// (nginx -t, haproxy -c).
func TestPeerConfigs(t *testing.T) {
	const configDir = "../../configs/bench"
	entries, err := os.ReadDir(configDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sc := &scenario{name: "keys", deployments: 3, dir: filepath.Join(dir, "keys")}
	if err := writeScenarioFiles(sc, "127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"routes.yaml", "nginx.map", "haproxy.map", "caddy.map", "keys.lua"} {
		b, err := os.ReadFile(filepath.Join(sc.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(b), sc.ids[2]); got != 1 {
			t.Errorf("%s names deployment %s %d times; want once", name, sc.ids[2], got)
		}
	}
	checks := map[string][]string{
		"backend.nginx.conf": {"nginx", "-t", "-q", "-c"},
		"proxy.nginx.conf":   {"nginx", "-t", "-q", "-c"},
		"haproxy.cfg":        {"haproxy", "-c", "-q", "-f"},
		"Caddyfile":          {"caddy", "validate", "--adapter", "caddyfile", "--config"},
	}
	certs, err := writeBenchCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Every template once, haproxy.cfg again as the haproxy-splice target
	// renders it, and the TLS targets' templates with TLS.
	type rendering struct {
		tmpl, name  string
		splice, tls bool
	}
	var renderings []rendering
	for _, e := range entries {
		renderings = append(renderings, rendering{e.Name(), e.Name(), false, false})
		switch e.Name() {
		case "haproxy.cfg":
			renderings = append(renderings, rendering{e.Name(), "haproxy-splice.cfg", true, false},
				rendering{e.Name(), "haproxy-tls.cfg", false, true})
		case "Caddyfile":
			renderings = append(renderings, rendering{e.Name(), "Caddyfile-tls", false, true})
		}
	}
	for _, r := range renderings {
		t.Run(r.name, func(t *testing.T) {
			check, ok := checks[r.tmpl]
			if !ok {
				t.Fatalf("configs/bench/%s: no check; add one here", r.tmpl)
			}
			dst := filepath.Join(sc.dir, r.name)
			data := tmplData{Dir: sc.dir, Port: 18080, BackendPort: 18081, Splice: r.splice}
			if r.tls {
				data.TLS, data.Cert, data.Key, data.CertKey = true, certs.cert, certs.key, certs.certKey
			}
			if err := renderTemplate(filepath.Join(configDir, r.tmpl), dst, data); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(dst)
			if strings.Contains(string(b), "{{") || !strings.Contains(string(b), "18080") {
				t.Fatalf("rendered %s still has a placeholder or lacks the port:\n%s", r.name, b)
			}
			if r.tmpl == "haproxy.cfg" && strings.Contains(string(b), "\n    option splice-response\n") != r.splice {
				t.Fatalf("rendered %s: option splice-response present %v; want %v", r.name, !r.splice, r.splice)
			}
			tool, err := lookTool(check[0])
			if err != nil {
				t.Skipf("%s not installed: rendered only", check[0])
			}
			out, err := exec.Command(tool, append(check[1:], dst)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s %v: %v\n%s", tool, check[1:], err, out)
			}
		})
	}
}
