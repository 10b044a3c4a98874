//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/loadtest"
	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
)

// haproxyBinary returns the HAProxy to run: haproxy on PATH, else
// /usr/sbin/haproxy; "" when there is none, or the test fails when
// SWITCHYARD_REQUIRE_HAPROXY is set (CI, where
// scripts/install-test-deps.sh installs it).
func haproxyBinary(t *testing.T) string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	if os.Getenv("SWITCHYARD_REQUIRE_HAPROXY") != "" {
		t.Fatal("no haproxy binary, and SWITCHYARD_REQUIRE_HAPROXY is set; run scripts/install-test-deps.sh")
	}
	return ""
}

// lbConfig is HAProxy in TCP mode in front of two proxies, sending the
// PROXY protocol v2 (its health checks too, as LOCAL headers) and
// checking /_health every 200 ms, out after one failure.
const lbConfig = `global
    maxconn 2000

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch

frontend edge
    bind %s
    default_backend proxies

backend proxies
    balance roundrobin
    option httpchk
    http-check send meth GET uri /_health ver HTTP/1.1 hdr Host lb-check
    http-check expect status 200
    default-server send-proxy-v2 check inter 200ms fall 1 rise 1
    server proxy-1 %s
    server proxy-2 %s
`

// startLB runs HAProxy on a free loopback address in front of the
// proxies at a and b, and waits until it listens.
func startLB(t *testing.T, bin, a, b string) string {
	return startLBConfig(t, bin, lbConfig, a, b)
}

// startLBConfig is startLB with the configuration template config.
func startLBConfig(t *testing.T, bin, config, a, b string) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, addr, a, b), 0o644); err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	testutil.EventuallyErr(t, 15*time.Second, "haproxy listens", func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("haproxy exited: %v\n%s", err, out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	return addr
}

// startProxyBehindLB runs `switchyard proxy` taking the PROXY protocol
// from 127.0.0.1 only, and waits until its admin /_health says 200 (the
// client listener answers only with a header).
func startProxyBehindLB(t *testing.T, routesFile, accessLog string, extra ...string) *proc {
	t.Helper()
	p := &proc{addr: testutil.FreeAddr(t), admin: testutil.FreeAddr(t), stderr: &testutil.Buffer{}, done: make(chan error, 1)}
	args := []string{"proxy", "--routes-file", routesFile, "--listen", p.addr, "--admin-listen", p.admin,
		"--access-log", accessLog, "--proxy-protocol", "on", "--proxy-protocol-from", "127.0.0.1",
		"--drain-delay", "2s", "--shutdown-timeout", "5s"}
	p.cmd = exec.Command(binary, append(args, extra...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("proxy %s stderr:\n%s", p.addr, p.stderr.String())
		}
	})
	testutil.EventuallyErr(t, 30*time.Second, "the proxy is healthy", func() error {
		if status, _ := httpGet("http://" + p.admin + "/_health"); status == 200 {
			return nil
		}
		select {
		case err := <-p.done:
			t.Fatalf("proxy exited at start: %v\n%s", err, p.stderr.String())
		default:
		}
		return fmt.Errorf("stderr:\n%s", p.stderr.String())
	})
	return p
}

// forwardedFor is an instance that records the X-Forwarded-For values it
// sees, by value.
type forwardedFor struct {
	mu   sync.Mutex
	seen map[string]int
}

func (f *forwardedFor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen[r.Header.Get("X-Forwarded-For")]++
	f.mu.Unlock()
	w.Write([]byte("ok"))
}

func (f *forwardedFor) count(xff string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[xff]
}

// getViaLB sends a GET through the balancer on a new connection from the
// loopback address src.
func getViaLB(t *testing.T, src, url, deployment string) int {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Found-Cluster", deployment)
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET from %s: %v", src, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// accessLogClients counts the access log lines of path by client_ip and
// status; those of health checks by client_ip alone.
func accessLogClients(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Status   int    `json:"status_code"`
			ClientIP string `json:"client_ip"`
			Path     string `json:"path"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		if e.Path == "/_health" {
			// The balancer's checks: LOCAL headers, so the balancer is
			// the client.
			out[fmt.Sprintf("check %s", e.ClientIP)]++
			continue
		}
		if e.Status >= 400 && e.Status != 403 {
			t.Logf("access log: %s", line) // said when the count below is off
		}
		out[fmt.Sprintf("%s %d", e.ClientIP, e.Status)]++
	}
	return out
}

// Two proxies behind a real HAProxy (TCP mode, PROXY protocol v2, HTTP
// health checks on /_health): the client's address reaches the
// instances, the access logs and the traffic filters through the
// balancer, and a proxy stopped with SIGTERM under open-loop load leaves
// rotation through its draining /_health before it closes, so that no
// request fails.
func TestLoadBalancerDrainAndClientAddress(t *testing.T) {
	bin := haproxyBinary(t)
	if bin == "" {
		t.Skip("no haproxy binary; scripts/install-test-deps.sh installs it")
	}
	inst := &forwardedFor{seen: map[string]int{}}
	b1, b2 := startBackend(t, inst), startBackend(t, inst)
	const (
		depOpen = depID
		depTen  = "1f3a9c2e51d04b8e9a6c3d2f1e0b4a58" // allows 10.0.0.0/8 only
		depTwo  = "2f3a9c2e51d04b8e9a6c3d2f1e0b4a59" // allows 127.0.0.2 only
	)
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	var rb strings.Builder
	rb.WriteString("domain: example.test\ndeployments:\n")
	for _, d := range []struct{ id, allow string }{{depOpen, ""}, {depTen, "[10.0.0.0/8]"}, {depTwo, "[127.0.0.2]"}} {
		fmt.Fprintf(&rb, "  - id: %s\n    kind: es\n    serving: {blue: 100}\n", d.id)
		if d.allow != "" {
			fmt.Fprintf(&rb, "    allow: %s\n", d.allow)
		}
		fmt.Fprintf(&rb, "    instances:\n      - {id: i-0001, addr: %q, zone: zone-a, generation: blue}\n      - {id: i-0002, addr: %q, zone: zone-a, generation: blue}\n", b1.addr, b2.addr)
	}
	writeFileAtomic(t, routes, rb.String())
	logs := []string{filepath.Join(dir, "access-1.log"), filepath.Join(dir, "access-2.log")}
	p1 := startProxyBehindLB(t, routes, logs[0])
	p2 := startProxyBehindLB(t, routes, logs[1])
	lb := startLB(t, bin, p1.addr, p2.addr)
	url := "http://" + lb + "/"

	// The client's address, as HAProxy saw it, is the one the proxies use.
	for i := 0; i < 4; i++ {
		if got := getViaLB(t, "127.0.0.2", url, depOpen); got != 200 {
			t.Errorf("from 127.0.0.2 via the balancer: %d; want 200", got)
		}
		if got := getViaLB(t, "127.0.0.2", url, depTwo); got != 200 {
			t.Errorf("from 127.0.0.2 to a deployment allowing 127.0.0.2: %d; want 200", got)
		}
		if got := getViaLB(t, "127.0.0.3", url, depTwo); got != 403 {
			t.Errorf("from 127.0.0.3 to a deployment allowing 127.0.0.2: %d; want 403", got)
		}
		if got := getViaLB(t, "127.0.0.2", url, depTen); got != 403 {
			t.Errorf("from 127.0.0.2 to a deployment allowing 10.0.0.0/8: %d; want 403", got)
		}
	}
	if n := inst.count("127.0.0.2"); n != 8 {
		t.Errorf("instances saw X-Forwarded-For: 127.0.0.2 %d times; want 8 (all seen: %v)", n, inst.seen)
	}

	// Open-loop load through the balancer; one proxy is stopped in the
	// middle of it.
	before := inst.count("127.0.0.1")
	l, err := loadtest.Start(context.Background(), loadtest.Config{
		URL: url, Header: http.Header{"X-Found-Cluster": {depOpen}},
		Rate: 200, Connections: 16, Duration: 6 * time.Second, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	time.Sleep(2 * time.Second)
	p1.signal(t, syscall.SIGTERM)
	if code := p1.wait(t, 15*time.Second); code != 0 {
		t.Errorf("proxy-1 exited with %d; want 0", code)
	}
	r := l.Wait()
	checkNoFailures(t, "load through the balancer, one proxy stopped", r)
	if n := int64(inst.count("127.0.0.1") - before); n != r.Status[200] {
		t.Errorf("instances saw X-Forwarded-For: 127.0.0.1 on %d requests; want %d, one per answered request", n, r.Status[200])
	}

	// Both proxies' access logs hold the clients' addresses: the load's
	// (127.0.0.1, as HAProxy saw it) and 127.0.0.2/127.0.0.3 from above.
	p2.signal(t, syscall.SIGTERM)
	p2.wait(t, 15*time.Second)
	total := map[string]int{}
	for i, path := range logs {
		got := accessLogClients(t, path)
		t.Logf("proxy-%d access log: %v", i+1, got)
		if got["127.0.0.1 200"] == 0 || got["check 127.0.0.1"] == 0 {
			t.Errorf("proxy-%d logged no request of the load, or no health check: %v", i+1, got)
		}
		for k, v := range got {
			total[k] += v
		}
	}
	want := map[string]int{"127.0.0.2 200": 8, "127.0.0.3 403": 4, "127.0.0.2 403": 4, "127.0.0.1 200": int(r.Status[200])}
	for k, v := range want {
		if total[k] != v {
			t.Errorf("access log lines %q: %d; want %d (all: %v)", k, total[k], v, total)
		}
	}
	for k := range total {
		if _, ok := want[k]; !ok && k != "check 127.0.0.1" {
			t.Errorf("unexpected access log lines %q: %d", k, total[k])
		}
	}
}

// Two proxies' TLS listeners behind HAProxy (TCP mode: TLS passes
// through; PROXY protocol v2; health checks over TLS), under HTTP/2 load
// with several streams per connection: a proxy stopped with SIGTERM
// tells its HTTP/2 clients with GOAWAY, they reconnect through the
// balancer to the other, and no request fails.
func TestLoadBalancerDrainHTTP2(t *testing.T) {
	bin := haproxyBinary(t)
	if bin == "" {
		t.Skip("no haproxy binary; scripts/install-test-deps.sh installs it")
	}
	inst := &forwardedFor{seen: map[string]int{}}
	b1, b2 := startBackend(t, inst), startBackend(t, inst)
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	writeFileAtomic(t, routes, fmt.Sprintf("domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n    serving: {blue: 100}\n"+
		"    instances:\n      - {id: i-0001, addr: %q, zone: zone-a, generation: blue}\n      - {id: i-0002, addr: %q, zone: zone-a, generation: blue}\n",
		depID, b1.addr, b2.addr))
	ca := tlstest.NewCA(t)
	cert, key := ca.Leaf(t, time.Now().Add(time.Hour), "proxy.test").Write(t, dir, "proxy")
	logs := []string{filepath.Join(dir, "access-1.log"), filepath.Join(dir, "access-2.log")}
	tlsAddr := []string{testutil.FreeAddr(t), testutil.FreeAddr(t)}
	var ps []*proc
	for i := range 2 {
		ps = append(ps, startProxyBehindLB(t, routes, logs[i], "--tls-listen", tlsAddr[i], "--tls-cert", cert, "--tls-key", key))
	}
	lb := startLBConfig(t, bin, strings.Replace(lbConfig, "check inter 200ms", "check check-ssl verify none inter 200ms", 1), tlsAddr[0], tlsAddr[1])

	l, err := loadtest.Start(context.Background(), loadtest.Config{
		URL: "https://" + lb + "/", Header: http.Header{"X-Found-Cluster": {depID}},
		Protocol: loadtest.HTTP2, Streams: 4, TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "proxy.test"},
		Rate: 200, Connections: 4, Duration: 6 * time.Second, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	time.Sleep(2 * time.Second)
	ps[0].signal(t, syscall.SIGTERM)
	if code := ps[0].wait(t, 15*time.Second); code != 0 {
		t.Errorf("proxy-1 exited with %d; want 0", code)
	}
	r := l.Wait()
	checkNoFailures(t, "HTTP/2 load through the balancer, one proxy stopped", r)
	ps[1].signal(t, syscall.SIGTERM)
	ps[1].wait(t, 15*time.Second)

	// Both proxies served the load over HTTP/2, with the client's address.
	var total int64
	for i, path := range logs {
		n := accessLogProtocol(t, path, "HTTP/2", "127.0.0.1")
		t.Logf("proxy-%d: %d HTTP/2 requests from 127.0.0.1", i+1, n)
		if n == 0 {
			t.Errorf("proxy-%d logged no HTTP/2 request from 127.0.0.1", i+1)
		}
		total += n
	}
	if total != r.Status[200] {
		t.Errorf("the access logs hold %d HTTP/2 requests; want %d, one per answered request", total, r.Status[200])
	}
}

// accessLogProtocol counts the access log lines at path of requests
// (not health checks) in protocol from client.
func accessLogProtocol(t *testing.T, path, protocol, client string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Protocol string `json:"protocol"`
			ClientIP string `json:"client_ip"`
			Path     string `json:"path"`
		}
		if line == "" || json.Unmarshal([]byte(line), &e) != nil || e.Path == "/_health" {
			continue
		}
		if e.Protocol == protocol && e.ClientIP == client {
			n++
		}
	}
	return n
}
