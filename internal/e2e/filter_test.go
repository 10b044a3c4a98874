package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// getFrom sends a request for the deployment from the loopback address src
// and returns the status and body.
func getFrom(src, url string) (int, string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Found-Cluster", depID)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A traffic filter written with yardctl reaches the proxy through a route
// server, is lifted the same way, and survives a restart of the proxy
// from its disk snapshot with no route server up: a filter never fails
// open.
func TestTrafficFilterThroughTheRoutePath(t *testing.T) {
	rp := newRoutePath(t, 1)
	one := namedBackend(t, "one")
	apply := func(allow string) {
		t.Helper()
		content := fmt.Sprintf("domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n%s    serving: {blue: 100}\n"+
			"    instances:\n      - {id: i-0001, addr: %q, zone: zone-a, generation: blue}\n", depID, allow, one.addr)
		writeFileAtomic(t, rp.routes, content)
		if out, err := exec.Command(yardctl, "--zk", rp.zkFlag(), "apply", "-f", rp.routes).CombinedOutput(); err != nil {
			t.Fatalf("yardctl apply: %v\n%s", err, out)
		}
	}
	apply("    allow: [127.0.0.2]\n")
	rs := rp.startRouteServer("rs1")
	cache := t.TempDir()
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache, "--drain-delay", "0s")
	url := "http://" + p.addr + "/"

	if status, body := getFrom("127.0.0.1", url); status != 403 || body != `{"ok":false,"message":"Forbidden"}` {
		t.Errorf("from 127.0.0.1: %d %s; want 403 Forbidden", status, body)
	}
	if status, body := getFrom("127.0.0.2", url); status != 200 || body != "one" {
		t.Errorf("from 127.0.0.2: %d %s; want 200 one", status, body)
	}

	apply("")
	testutil.Eventually(t, 15*time.Second, "the lifted filter reaches the proxy", func() bool {
		status, _ := getFrom("127.0.0.1", url)
		return status == 200
	})
	apply("    allow: [127.0.0.2/32, 10.0.0.0/8]\n")
	testutil.Eventually(t, 15*time.Second, "the new filter reaches the proxy", func() bool {
		status, _ := getFrom("127.0.0.1", url)
		return status == 403
	})
	// The disk copy (the snapshot, and the journal of the changes since)
	// is written after the table is applied: wait until it holds the
	// filter.
	testutil.Eventually(t, 15*time.Second, "the change with the filter is on disk", func() bool {
		return strings.Contains(diskCopy(cache), "10.0.0.0/8")
	})

	rs.cmd.Process.Signal(syscall.SIGKILL)
	<-rs.done
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}
	p2 := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--cache-dir", cache)
	url = "http://" + p2.addr + "/"
	if status, _ := getFrom("127.0.0.1", url); status != 403 {
		t.Errorf("restarted from disk, from 127.0.0.1: %d; want 403", status)
	}
	if status, body := getFrom("127.0.0.2", url); status != 200 || body != "one" {
		t.Errorf("restarted from disk, from 127.0.0.2: %d %s; want 200 one", status, body)
	}
}
