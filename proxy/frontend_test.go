package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
	"github.com/switchyard/switchyard/routes"
	"golang.org/x/net/http2"
)

// Both front ends, the fasthttp listener and the net/http handler, drive
// the same request path: the same routing, statuses and headers, from the
// one Server.
func TestFrontEndsAgree(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	slow := startBackend(t, "slow-1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	tbl := mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Aliases: []string{"app"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: "bbbbbbbb", Kind: "es", Aliases: []string{"walled"}, Allow: []string{"203.0.113.0/24"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("b-1", a.addr, "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: "cccccccc", Kind: "es", Aliases: []string{"gone"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("c-1", testutil.RefusingAddr(t), "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: "dddddddd", Kind: "es", Aliases: []string{"slow"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("d-1", slow.addr, "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: "eeeeeeee", Kind: "es", Aliases: []string{"empty"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{{ID: "e-1", Addr: a.addr, Zone: "zone-a", Generation: "blue", Maintenance: true}}},
	)
	ca := tlstest.NewCA(t)
	cfg := Config{ResponseHeaderTimeout: 300 * time.Millisecond}
	cfg.TLS.Listen = "127.0.0.1:0"
	cfg.TLS.CertFile, cfg.TLS.KeyFile = ca.Leaf(t, time.Now().Add(time.Hour), "proxy.test").Write(t, t.TempDir(), "proxy")
	p := startProxy(t, cfg, tbl)
	hs := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(hs.Close)

	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: streamed both ways
	wantProto := "http"
	cases := []struct {
		name   string
		method string
		path   string
		header []string
		body   []byte
		status int
		check  func(t *testing.T, h http.Header, body []byte)
	}{
		{name: "route by X-Found-Cluster", method: "GET", path: "/x?y=1", header: []string{"X-Found-Cluster", "app.es"}, status: 200,
			check: func(t *testing.T, h http.Header, body []byte) {
				if h.Get("X-Found-Handling-Instance") != "a-1" || h.Get("X-Found-Handling-Cluster") != depA {
					t.Errorf("handling headers %v", h)
				}
				if !strings.Contains(string(body), `"path":"/x?y=1"`) {
					t.Errorf("body %s", body)
				}
				last := a.lastRequest()
				if got := last.Header.Get("X-Cloud-Request-Id"); got == "" || got != h.Get("X-Cloud-Request-Id") {
					t.Errorf("request ID at the instance %q, to the client %q", got, h.Get("X-Cloud-Request-Id"))
				}
				if got := last.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
					t.Errorf("X-Forwarded-For at the instance %q", got)
				}
				if got := last.Header.Get("X-Forwarded-Proto"); got != wantProto {
					t.Errorf("X-Forwarded-Proto at the instance %q", got)
				}
				if got := last.Header.Get("X-Drop"); got != "" {
					t.Errorf("X-Drop, named in Connection, reached the instance: %q", got)
				}
			}},
		{name: "route by Host", method: "GET", path: "/", header: []string{"Host", "app.es.example.test"}, status: 200},
		{name: "health", method: "GET", path: "/_health", status: 200,
			check: func(t *testing.T, h http.Header, body []byte) {
				if string(body) != `{"ok":true,"status":200}` {
					t.Errorf("body %s", body)
				}
			}},
		// The health path as the proxy compares paths: "//" is a path,
		// not an authority, in both front ends.
		{name: "health, doubled slash", method: "GET", path: "//_health", status: 200},
		{name: "health, escaped", method: "GET", path: "/%5Fhealth", status: 200},
		{name: "unknown key", method: "GET", path: "/", header: []string{"X-Found-Cluster", "nope.es"}, status: 404},
		{name: "traffic filter", method: "GET", path: "/", header: []string{"X-Found-Cluster", "walled.es"}, status: 403},
		{name: "no eligible instance", method: "GET", path: "/", header: []string{"X-Found-Cluster", "empty.es"}, status: 503},
		{name: "instance refuses", method: "GET", path: "/", header: []string{"X-Found-Cluster", "gone.es"}, status: 502},
		{name: "instance too slow", method: "GET", path: "/", header: []string{"X-Found-Cluster", "slow.es"}, status: 504},
		{name: "two route keys", method: "GET", path: "/", header: []string{"X-Found-Cluster", "app.es", "X-Found-Cluster", "walled.es"}, status: 400},
		{name: "short body", method: "POST", path: "/", header: []string{"X-Found-Cluster", "app.es"}, body: []byte("hello"), status: 200,
			check: func(t *testing.T, h http.Header, body []byte) {
				if string(body) != "hello" {
					t.Errorf("echo %q", body)
				}
			}},
		{name: "1 MiB body", method: "POST", path: "/", header: []string{"X-Found-Cluster", "app.es"}, body: big, status: 200,
			check: func(t *testing.T, h http.Header, body []byte) {
				if !bytes.Equal(body, big) {
					t.Errorf("echo of %d bytes: %d back", len(big), len(body))
				}
			}},
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "proxy.test", NextProtos: []string{"h2"}}}}
	t.Cleanup(h2.CloseIdleConnections)
	for _, fe := range []struct {
		name, url string
		c         *http.Client
		proto     string
	}{{"fasthttp", p.url, plain, "http"}, {"net/http", hs.URL, plain, "http"}, {"h2", "https://" + p.TLSAddr().String(), h2, "https"}} {
		wantProto = fe.proto
		for _, tc := range cases {
			t.Run(fe.name+"/"+tc.name, func(t *testing.T) {
				var rd io.Reader
				if tc.body != nil {
					rd = bytes.NewReader(tc.body)
				}
				req, _ := http.NewRequest(tc.method, fe.url+tc.path, rd)
				if fe.proto == "http" { // HTTP/2 has no Connection header
					req.Header.Set("Connection", "X-Drop")
					req.Header.Set("X-Drop", "1")
				}
				for i := 0; i+1 < len(tc.header); i += 2 {
					if tc.header[i] == "Host" {
						req.Host = tc.header[i+1]
					} else {
						req.Header.Add(tc.header[i], tc.header[i+1])
					}
				}
				resp, err := fe.c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d %s; want %d", resp.StatusCode, body, tc.status)
				}
				if resp.Header.Get("X-Cloud-Request-Id") == "" {
					t.Error("no X-Cloud-Request-Id")
				}
				if tc.status >= 400 {
					var own struct {
						OK      *bool  `json:"ok"`
						Message string `json:"message"`
					}
					if err := json.Unmarshal(body, &own); err != nil || own.OK == nil || *own.OK || own.Message == "" {
						t.Errorf("own response body %s", body)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q", ct)
					}
				}
				if fe.proto == "https" && resp.ProtoMajor != 2 {
					t.Errorf("served over %s; want HTTP/2", resp.Proto)
				}
				if tc.check != nil {
					tc.check(t, resp.Header, body)
				}
			})
		}
	}
}

// X-Forwarded-Proto is the scheme the client connection has: https behind
// a TLS server of the net/http front end.
func TestForwardedProtoFollowsTheConnection(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}}))
	hs := httptest.NewTLSServer(p.HTTPHandler())
	t.Cleanup(hs.Close)
	for _, tc := range []struct {
		c    *http.Client
		url  string
		want string
	}{{client, p.url, "http"}, {hs.Client(), hs.URL, "https"}} {
		if status, body, _ := getVia(t, tc.c, tc.url+"/", "X-Found-Cluster", depA, "X-Forwarded-Proto", "forged"); status != 200 {
			t.Fatalf("%s: %d %s", tc.url, status, body)
		}
		if got := a.lastRequest().Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: X-Forwarded-Proto at the instance %q; want %q", tc.url, got, tc.want)
		}
	}
}

// learnedClient is a layer standing in for the PROXY protocol's: its
// connections say the client is someone behind the peer.
type learnedClient struct {
	net.Listener
	client netip.AddrPort
}

func (l learnedClient) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	info := listen.NewInfo("lb", c.RemoteAddr())
	info.Client = l.client
	return &recordConn{Conn: c, info: info}, nil
}

type recordConn struct {
	net.Conn
	info listen.Info
}

func (c *recordConn) Info() *listen.Info { return &c.info }

// The request path takes the client's address from the connection's
// record, as a layer of the listener stack left it: the traffic filter,
// X-Forwarded-For and the access log all see the client a layer learned.
func TestClientFromTheConnectionRecord(t *testing.T) {
	a := startBackend(t, "a-1", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{AdminListen: "-", AccessLog: accessLogDiscard(), Logger: discardLogger(), DrainDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Allow: []string{"203.0.113.0/24"}, Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, learnedClient{ln, netip.MustParseAddrPort("203.0.113.9:4711")})
	}()
	<-s.Ready()
	if status, body, _ := get(t, "http://"+ln.Addr().String()+"/", "X-Found-Cluster", depA); status != 200 {
		t.Fatalf("client allowed by its learned address: %d %s", status, body)
	}
	if got := a.lastRequest().Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.9" {
		t.Errorf("X-Forwarded-For at the instance %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
