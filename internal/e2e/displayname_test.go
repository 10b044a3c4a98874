package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes/wire"
)

// A display name written with yardctl is in ZooKeeper (yardctl routes
// shows it), reaches the proxy through a route server, and is in the
// table the proxy serves, as its snapshot on disk holds it.
func TestDisplayNameThroughTheRoutePath(t *testing.T) {
	const name = "Production search (EU) — Zürich"
	rp := newRoutePath(t, 1)
	one := namedBackend(t, "one")
	writeFileAtomic(t, rp.routes, fmt.Sprintf("domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n"+
		"    display_name: %s\n    serving: {blue: 100}\n"+
		"    instances:\n      - {id: i-0001, addr: %q, zone: zone-a, generation: blue}\n", depID, name, one.addr))
	if out, err := exec.Command(yardctl, "--zk", rp.zkFlag(), "apply", "-f", rp.routes).CombinedOutput(); err != nil {
		t.Fatalf("yardctl apply: %v\n%s", err, out)
	}
	out, err := exec.Command(yardctl, "--zk", rp.zkFlag(), "routes").CombinedOutput()
	if err != nil || !strings.Contains(string(out), depID+"  "+name+"  es") {
		t.Errorf("yardctl routes (%v):\n%s", err, out)
	}

	rp.startRouteServer("rs1")
	cache := t.TempDir()
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache)
	if status, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", depID); status != 200 || body != "one" {
		t.Errorf("through the proxy: %d %s; want 200 one", status, body)
	}
	testutil.Eventually(t, 15*time.Second, "the proxy's snapshot holds the display name", func() bool {
		m, err := wire.ReadFile(filepath.Join(cache, "routes.snapshot"))
		if err != nil {
			return false
		}
		st, err := wire.Apply(nil, m)
		if err != nil {
			return false
		}
		tb, err := st.Table()
		if err != nil {
			return false
		}
		d := tb.Lookup([]byte(depID))
		return d != nil && d.DisplayName == name
	})
}
