package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/routes"
)

// viaBalancer sends one request on a new connection from 127.0.0.1 that
// starts with header, and returns the response's status.
func viaBalancer(t *testing.T, addr, header, deployment string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, header+"GET /_search HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: "+deployment+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The address a load balancer's PROXY header carries is the client's for
// the traffic filter, the instance's X-Forwarded-For and the access log,
// although the TCP peer is the balancer (127.0.0.1).
func TestProxyProtocolClient(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	b := startBackend(t, "b-1", nil)
	logPath := t.TempDir() + "/access.log"
	cfg := Config{
		ProxyProtocol:     listen.ProxyOn,
		ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}
	cfg.AccessLog.Path = logPath
	p := startProxy(t, cfg, mustTable(t,
		// Only the client's network: the balancer's address is not let in.
		&routes.DeploymentSpec{ID: depA, Kind: "es", Allow: []string{"203.0.113.0/24"},
			Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}},
		// Only the balancer's address: its clients are not let in.
		&routes.DeploymentSpec{ID: depB, Kind: "kb", Allow: []string{"127.0.0.1"},
			Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("b-1", b.addr, "zone-b", "blue")}},
	))
	addr := p.Addr().String()
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 40001 9200\r\n"
	v2 := string(v2Header(t, "[2001:db8::5]:40002"))

	if got := viaBalancer(t, addr, v1, depA); got != 200 {
		t.Errorf("client 203.0.113.7 to a deployment allowing 203.0.113.0/24: %d; want 200", got)
	}
	if xff := a.lastRequest().Header.Get("X-Forwarded-For"); xff != "203.0.113.7" {
		t.Errorf("instance's X-Forwarded-For %q; want 203.0.113.7", xff)
	}
	if got := viaBalancer(t, addr, v1, depB); got != 403 {
		t.Errorf("client 203.0.113.7 to a deployment allowing only the balancer: %d; want 403", got)
	}
	if got := viaBalancer(t, addr, v2, depA); got != 403 {
		t.Errorf("client 2001:db8::5 to a deployment allowing 203.0.113.0/24: %d; want 403", got)
	}
	// A LOCAL header (the balancer's health check) leaves the balancer
	// as the client.
	if got := viaBalancer(t, addr, string(localHeader()), depB); got != 200 {
		t.Errorf("LOCAL header to a deployment allowing the balancer: %d; want 200", got)
	}
	if xff := b.lastRequest().Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("instance's X-Forwarded-For after a LOCAL header %q; want 127.0.0.1", xff)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Errorf("instances got %d and %d requests; want 1 each", a.hits.Load(), b.hits.Load())
	}

	// An unlisted peer (127.0.0.2) is refused before any request, a
	// listed one without a header too; both are counted.
	c := clientFrom("127.0.0.2")
	if resp, err := c.Get(p.url + "/_health"); err == nil {
		resp.Body.Close()
		t.Errorf("an unlisted peer got %d; want the connection closed", resp.StatusCode)
	}
	if resp := rawRequest(t, addr, "GET /_health HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(resp, "ERROR") {
		t.Errorf("a listed peer without a header got %s; want the connection closed", resp)
	}
	if got := metricValue(t, p, `switchyard_proxy_protocol_refused_total{reason="unlisted_peer"}`); got < 1 {
		t.Errorf("refused unlisted_peer = %v; want at least 1", got)
	}
	if got := metricValue(t, p, `switchyard_proxy_protocol_refused_total{reason="missing"}`); got != 1 {
		t.Errorf("refused missing = %v; want 1", got)
	}

	p.stop(t) // flushes the access log
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Status   int    `json:"status_code"`
			ClientIP string `json:"client_ip"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		got = append(got, e.ClientIP+" "+http.StatusText(e.Status))
	}
	want := []string{"203.0.113.7 OK", "203.0.113.7 Forbidden", "2001:db8::5 Forbidden", "127.0.0.1 OK"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("access log clients and statuses %q; want %q", got, want)
	}
}

// With optional, a listed peer may send a header or not, and an unlisted
// peer's header is not honoured: it reaches the HTTP parser, which
// answers 400.
func TestProxyProtocolOptional(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	p := startProxy(t, Config{
		ProxyProtocol:     listen.ProxyOptional,
		ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Allow: []string{"203.0.113.0/24", "127.0.0.2"},
		Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}}))
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 40001 9200\r\n"
	if got := viaBalancer(t, p.Addr().String(), v1, depA); got != 200 {
		t.Errorf("listed peer with a header: %d; want 200", got)
	}
	if got := viaBalancer(t, p.Addr().String(), "", depA); got != 403 {
		t.Errorf("listed peer without a header (client 127.0.0.1): %d; want 403", got)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, v1+"GET / HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: "+depA+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unlisted peer with a header: %d; want 400", resp.StatusCode)
	}
	if a.hits.Load() != 1 {
		t.Errorf("instance got %d requests; want 1", a.hits.Load())
	}
}

// New refuses a PROXY protocol mode with no peers to take it from.
func TestProxyProtocolConfig(t *testing.T) {
	if _, err := New(Config{ProxyProtocol: listen.ProxyOn, AccessLog: accessLogDiscard()}); err == nil ||
		!strings.Contains(err.Error(), "ProxyProtocolFrom") {
		t.Errorf("New with PROXY protocol on and no peers: %v; want an error naming ProxyProtocolFrom", err)
	}
}

// v2Header is a PROXY protocol v2 header from src over TCP.
func v2Header(t *testing.T, src string) []byte {
	t.Helper()
	ap := netip.MustParseAddrPort(src)
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21")
	if ap.Addr().Is4() {
		b = append(b, 0x11, 0, 12)
		s, d := ap.Addr().As4(), [4]byte{127, 0, 0, 1}
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		s, d := ap.Addr().As16(), netip.IPv6Loopback().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	return append(b, byte(ap.Port()>>8), byte(ap.Port()), 0x23, 0xf0)
}

// localHeader is a PROXY protocol v2 LOCAL header, as HAProxy's health
// checks send.
func localHeader() []byte {
	return []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
}
