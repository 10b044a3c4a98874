package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/routes"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address src (any 127.0.0.0/8 address is a local one).
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// A deployment with a traffic filter answers only the clients in it; the
// others get 403 with the body of docs/reference.md, and no instance sees them.
func TestTrafficFilter(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	b := startBackend(t, "b-1", nil)
	logPath := t.TempDir() + "/access.log"
	cfg := Config{}
	cfg.AccessLog.Path = logPath
	p := startProxy(t, cfg, mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Aliases: []string{"prod-search"}, Allow: []string{"127.0.0.2", "10.0.0.0/8"},
			Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: depB, Kind: "kb", Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("b-1", b.addr, "zone-b", "blue")}},
	))
	from1, from2 := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")

	status, body, h := getVia(t, from1, p.url+"/_search", "X-Found-Cluster", depA)
	if status != 403 || body != `{"ok":false,"message":"Forbidden"}` {
		t.Errorf("from 127.0.0.1 to the filtered deployment: %d %s; want 403 Forbidden", status, body)
	}
	if h.Get("X-Cloud-Request-Id") == "" || h.Get("Content-Type") != "application/json" {
		t.Errorf("403 headers: %v", h)
	}
	// By alias in the Host name too; a forged X-Forwarded-For from an
	// untrusted peer changes nothing.
	if status, _, _ := getVia(t, from1, p.url+"/", "Host", "prod-search.es.example.test", "X-Forwarded-For", "127.0.0.2"); status != 403 {
		t.Errorf("by alias, with a forged X-Forwarded-For: %d; want 403", status)
	}
	if a.hits.Load() != 0 {
		t.Errorf("the instance got %d requests from refused clients", a.hits.Load())
	}
	if status, body, _ := getVia(t, from2, p.url+"/_search", "X-Found-Cluster", depA); status != 200 || !strings.Contains(body, `"instance":"a-1"`) {
		t.Errorf("from 127.0.0.2: %d %s; want 200 from a-1", status, body)
	}
	if status, _, _ := getVia(t, from1, p.url+"/", "X-Found-Cluster", depB); status != 200 {
		t.Errorf("from 127.0.0.1 to the deployment without a filter: %d; want 200", status)
	}
	if got := metricValue(t, p, "switchyard_forbidden_total"); got != 2 {
		t.Errorf("switchyard_forbidden_total = %v; want 2", got)
	}

	// The filter follows the table: lifting it lets 127.0.0.1 in.
	p.Apply(mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}}))
	if status, _, _ := getVia(t, from1, p.url+"/", "X-Found-Cluster", depA); status != 200 {
		t.Errorf("after the filter was removed: %d; want 200", status)
	}

	p.stop(t) // flushes the access log
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var forbidden int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Status     int    `json:"status_code"`
			Reason     string `json:"status_reason"`
			Deployment string `json:"handling_cluster"`
			ClientIP   string `json:"client_ip"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		if e.Status == 403 {
			forbidden++
			if e.Reason != "forbidden" || e.Deployment != depA || e.ClientIP != "127.0.0.1" {
				t.Errorf("access log line of a 403: %s", line)
			}
		}
	}
	if forbidden != 2 {
		t.Errorf("%d access log lines with 403; want 2:\n%s", forbidden, data)
	}
}

// Behind a trusted proxy the filter checks the client that X-Forwarded-For
// names: the right-most address that is not a trusted proxy.
func TestTrafficFilterBehindTrustedProxy(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	p := startProxy(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16")}},
		mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Allow: []string{"203.0.113.0/24", "2001:db8::/32"},
			Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}}))
	from1, from2 := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	for _, tc := range []struct {
		name   string
		c      *http.Client
		xff    string
		status int
	}{
		{"trusted peer, client in the filter", from1, "203.0.113.9", 200},
		{"IPv6 client in the filter", from1, "2001:db8::7", 200},
		{"spoofed left-most entry ignored", from1, "198.51.100.1, 203.0.113.9", 200},
		{"through another trusted proxy", from1, "203.0.113.9, 192.168.1.1", 200},
		{"right-most untrusted outside", from1, "203.0.113.9, 198.51.100.1", 403},
		{"not an address", from1, "203.0.113.9, unknown", 403},
		{"no X-Forwarded-For: the trusted peer itself", from1, "", 403},
		{"every entry trusted: the left-most", from1, "192.168.3.3, 192.168.1.1", 403},
		{"untrusted peer with a forged header", from2, "203.0.113.9", 403},
	} {
		kv := []string{"X-Found-Cluster", depA}
		if tc.xff != "" {
			kv = append(kv, "X-Forwarded-For", tc.xff)
		}
		if status, body, _ := getVia(t, tc.c, p.url+"/", kv...); status != tc.status {
			t.Errorf("%s (X-Forwarded-For %q): %d %s; want %d", tc.name, tc.xff, status, body, tc.status)
		}
	}
	if got := metricValue(t, p, "switchyard_forbidden_total"); got != 5 {
		t.Errorf("switchyard_forbidden_total = %v; want 5", got)
	}
}

// The client address is found once, from every X-Forwarded-For line read
// as one list, and is what the filter, the log and the forwarded header use.
func TestClientOf(t *testing.T) {
	trust := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peerTrusted, peerOther := netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string // one header line each
		want string   // "" for the zero Addr
		text string   // for the access log
		sent string   // X-Forwarded-For sent on; "" when the peer alone
	}{
		{peerOther, []string{"203.0.113.1"}, "192.0.2.1", "192.0.2.1", ""},
		{peerOther, []string{"203.0.113.1", "198.51.100.1"}, "192.0.2.1", "192.0.2.1", ""},
		{peerTrusted, nil, "10.1.1.1", "10.1.1.1", ""},
		{peerTrusted, []string{""}, "10.1.1.1", "10.1.1.1", ""},
		{peerTrusted, []string{"203.0.113.1"}, "203.0.113.1", "203.0.113.1", "203.0.113.1, 10.1.1.1"},
		{peerTrusted, []string{" 198.51.100.2 ,203.0.113.1 , 10.2.2.2 "}, "203.0.113.1", "203.0.113.1", "198.51.100.2 ,203.0.113.1 , 10.2.2.2, 10.1.1.1"},
		{peerTrusted, []string{"::ffff:203.0.113.1"}, "203.0.113.1", "::ffff:203.0.113.1", "::ffff:203.0.113.1, 10.1.1.1"},
		{peerTrusted, []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3", "10.3.3.3", "10.3.3.3, 10.2.2.2, 10.1.1.1"},
		{peerTrusted, []string{"203.0.113.1, ,"}, "203.0.113.1", "203.0.113.1", "203.0.113.1, ,, 10.1.1.1"},
		{peerTrusted, []string{"nonsense"}, "", "nonsense", "nonsense, 10.1.1.1"},
		{peerTrusted, []string{"203.0.113.1:4711"}, "", "203.0.113.1:4711", "203.0.113.1:4711, 10.1.1.1"},
		// A forged first line, and the trusted hop's own line after it
		// (HAProxy's option forwardfor appends a line): the hop's counts.
		{peerTrusted, []string{"198.51.100.66", "203.0.113.1"}, "203.0.113.1", "203.0.113.1", "198.51.100.66, 203.0.113.1, 10.1.1.1"},
		{peerTrusted, []string{"203.0.113.1", "10.2.2.2"}, "203.0.113.1", "203.0.113.1", "203.0.113.1, 10.2.2.2, 10.1.1.1"},
	} {
		raw := "GET / HTTP/1.1\r\nHost: x\r\n"
		for _, line := range tc.xff {
			raw += "X-Forwarded-For: " + line + "\r\n"
		}
		var h head.Request
		if err := h.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		sc := scanRequest(h.RawHeaders())
		var buf []byte
		var ipbuf [64]byte
		c := clientOf(&h, &sc, tc.peer, trust, &buf, ipbuf[:])
		if (tc.want == "" && c.addr.IsValid()) || (tc.want != "" && c.addr != netip.MustParseAddr(tc.want)) {
			t.Errorf("clientOf(peer %s, %q) = %v; want %q", tc.peer, tc.xff, c.addr, tc.want)
		}
		if string(c.text) != tc.text {
			t.Errorf("clientOf(peer %s, %q): text %q; want %q", tc.peer, tc.xff, c.text, tc.text)
		}
		if string(c.xff) != tc.sent {
			t.Errorf("clientOf(peer %s, %q): X-Forwarded-For to send %q; want %q", tc.peer, tc.xff, c.xff, tc.sent)
		}
	}
}
