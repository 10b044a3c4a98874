package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
	"github.com/switchyard/switchyard/routes"
)

// startTLSProxy runs a proxy with a TLS listener over certificates in a new
// directory (one pair per name) plus, when def is set, the default pair
// given as files; tune edits the config before it starts.
type tlsFixture struct {
	*testProxy
	ca      *tlstest.CA
	dir     string
	backend *backend
	logPath string
}

func startTLSProxy(t *testing.T, def bool, tune func(*Config)) *tlsFixture {
	t.Helper()
	ca := tlstest.NewCA(t)
	later := time.Now().Add(time.Hour)
	dir := t.TempDir()
	ca.Leaf(t, later, "api.example.test").Write(t, dir, "api")
	ca.Leaf(t, later, "*.example.test").Write(t, dir, "wildcard")
	cfg := Config{}
	cfg.TLS.Listen = "127.0.0.1:0"
	cfg.TLS.CertDir = dir
	if def {
		cfg.TLS.CertFile, cfg.TLS.KeyFile = ca.Leaf(t, later, "default.test").Write(t, t.TempDir(), "default")
	}
	cfg.AccessLog.Path = filepath.Join(t.TempDir(), "access.log")
	if tune != nil {
		tune(&cfg)
	}
	b := startBackend(t, "a-1", nil)
	p := startProxy(t, cfg, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es",
		Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("a-1", b.addr, "zone-a", "blue")}}))
	return &tlsFixture{testProxy: p, ca: ca, dir: dir, backend: b, logPath: cfg.AccessLog.Path}
}

// clientConfig trusts the fixture's CA and names sni.
func (f *tlsFixture) clientConfig(sni string) *tls.Config {
	return &tls.Config{RootCAs: f.ca.Pool(), ServerName: sni, InsecureSkipVerify: sni == ""}
}

// tlsClient is a client connection to the TLS listener.
type tlsClient struct {
	c  *tls.Conn
	br *bufio.Reader
}

func (f *tlsFixture) dial(t *testing.T, conf *tls.Config) (*tlsClient, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", f.TLSAddr().String(), conf)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &tlsClient{c: c, br: bufio.NewReader(c)}, nil
}

// do sends a request for depA on the connection and returns the status.
func (c *tlsClient) do() (int, error) {
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, "GET /_search HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: "+depA+"\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// served is the first DNS name of the certificate the server showed.
func (c *tlsClient) served() string {
	if pc := c.c.ConnectionState().PeerCertificates; len(pc) > 0 && len(pc[0].DNSNames) > 0 {
		return pc[0].DNSNames[0]
	}
	return ""
}

// Over TLS the request path is the plain one's: SNI picks the
// certificate, the instance gets X-Forwarded-Proto https (http over the
// plain listener, which serves beside it), ALPN gives an HTTP/1.1 client
// http/1.1 (HTTP/2 clients: TestFrontEndsAgree), and a
// client that never starts its handshake holds up no other.
func TestTLSRequestPath(t *testing.T) {
	f := startTLSProxy(t, true, nil)
	stalled, err := net.Dial("tcp", f.TLSAddr().String()) // sends nothing
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	for _, tc := range []struct{ sni, want string }{
		{"api.example.test", "api.example.test"},
		{"kb.example.test", "*.example.test"},
		{"x.kb.example.test", "default.test"},
		{"unknown.test", "default.test"},
		{"", "default.test"},
	} {
		conf := f.clientConfig(tc.sni)
		conf.InsecureSkipVerify = true // the default is not valid for every name asked
		conf.NextProtos = []string{"http/1.1"}
		c, err := f.dial(t, conf)
		if err != nil {
			t.Errorf("SNI %q: %v", tc.sni, err)
			continue
		}
		if got := c.served(); got != tc.want {
			t.Errorf("SNI %q: served %q; want %q", tc.sni, got, tc.want)
		}
		if p := c.c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("ALPN chose %q; want http/1.1", p)
		}
		if status, err := c.do(); err != nil || status != 200 {
			t.Errorf("SNI %q: request %d %v; want 200", tc.sni, status, err)
		}
		if got := f.backend.lastRequest().Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto over TLS %q; want https", got)
		}
	}
	if status, _, _ := get(t, f.url+"/_search", "X-Found-Cluster", depA); status != 200 {
		t.Errorf("plain listener: %d; want 200", status)
	}
	if got := f.backend.lastRequest().Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto over the plain listener %q; want http", got)
	}
}

// Without a default certificate, a name no certificate has fails the
// handshake (an alert), and it is counted.
func TestTLSUnknownNameWithoutDefault(t *testing.T) {
	f := startTLSProxy(t, false, nil)
	for _, sni := range []string{"unknown.test", ""} {
		if _, err := f.dial(t, f.clientConfig(sni)); err == nil {
			t.Errorf("SNI %q without a default: handshake done; want it failed", sni)
		}
	}
	if c, err := f.dial(t, f.clientConfig("api.example.test")); err != nil {
		t.Errorf("a known name: %v", err)
	} else if status, err := c.do(); status != 200 {
		t.Errorf("a known name: %d %v; want 200", status, err)
	}
	if got := metricValue(t, f.testProxy, `switchyard_tls_handshake_errors_total{reason="no_certificate"}`); got != 2 {
		t.Errorf("handshake errors no_certificate = %v; want 2", got)
	}
}

// TLS 1.0 and 1.1 are refused; 1.2 takes only ECDHE suites with an AEAD.
func TestTLSVersions(t *testing.T) {
	f := startTLSProxy(t, true, nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conf := f.clientConfig("api.example.test")
		conf.MinVersion, conf.MaxVersion = v, v
		if _, err := f.dial(t, conf); err == nil {
			t.Errorf("%s: handshake done; want it refused", tls.VersionName(v))
		}
	}
	conf := f.clientConfig("api.example.test")
	conf.MaxVersion = tls.VersionTLS12
	conf.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if _, err := f.dial(t, conf); err == nil {
		t.Error("TLS 1.2 with a CBC suite: handshake done; want it refused")
	}
	conf.CipherSuites = nil
	c, err := f.dial(t, conf)
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	if st := c.c.ConnectionState(); st.Version != tls.VersionTLS12 {
		t.Errorf("version %s; want TLS 1.2", tls.VersionName(st.Version))
	}
	if status, err := c.do(); status != 200 {
		t.Errorf("TLS 1.2 request: %d %v; want 200", status, err)
	}
}

// A second connection resumes the session of the first (a ticket), and
// the access log says so; tickets of the previous ticket key still
// resume, older ones do not.
func TestTLSResumption(t *testing.T) {
	f := startTLSProxy(t, true, nil)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		conf := f.clientConfig("api.example.test")
		conf.MaxVersion = v
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		resumed := func() bool {
			t.Helper()
			c, err := f.dial(t, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.c.Close()
			if status, err := c.do(); status != 200 { // reads the ticket of TLS 1.3
				t.Fatalf("request: %d %v", status, err)
			}
			return c.c.ConnectionState().DidResume
		}
		if resumed() {
			t.Errorf("%s: first connection resumed", tls.VersionName(v))
		}
		if !resumed() {
			t.Errorf("%s: second connection not resumed", tls.VersionName(v))
		}
		f.RotateTicketKeys()
		if !resumed() {
			t.Errorf("%s: not resumed after one ticket key rotation; want the previous key kept", tls.VersionName(v))
		}
		f.RotateTicketKeys()
		f.RotateTicketKeys()
		if resumed() {
			t.Errorf("%s: resumed after two rotations since its ticket; want a full handshake", tls.VersionName(v))
		}
	}
	if status, _, _ := get(t, f.url+"/_search", "X-Found-Cluster", depA); status != 200 {
		t.Errorf("plain listener: %d; want 200", status)
	}

	f.stop(t) // flushes the access log
	data, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Version *string `json:"tls_version"`
			Resumed *bool   `json:"tls_resumed"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		switch {
		case e.Version == nil && e.Resumed == nil:
			got = append(got, "plain")
		case e.Version != nil && e.Resumed != nil:
			if *e.Resumed {
				got = append(got, *e.Version+" resumed")
			} else {
				got = append(got, *e.Version+" new")
			}
		default:
			got = append(got, "half: "+line)
		}
	}
	want := "TLSv1.3 new,TLSv1.3 resumed,TLSv1.3 resumed,TLSv1.3 new," +
		"TLSv1.2 new,TLSv1.2 resumed,TLSv1.2 resumed,TLSv1.2 new,plain"
	if g := strings.Join(got, ","); g != want {
		t.Errorf("access log TLS fields:\n got %s\nwant %s", g, want)
	}
}

// New certificate files are taken on reload (a poll, or SIGHUP's
// ReloadTLS) by new handshakes; an open connection goes on. A bad pair is
// refused, counted, and the old certificate of its name kept.
func TestTLSReload(t *testing.T) {
	f := startTLSProxy(t, true, func(c *Config) { c.TLS.ReloadInterval = 50 * time.Millisecond })
	later := time.Now().Add(2 * time.Hour)
	open, err := f.dial(t, f.clientConfig("api.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	if status, err := open.do(); status != 200 {
		t.Fatalf("request: %d %v", status, err)
	}
	before := open.c.ConnectionState().PeerCertificates[0].NotAfter

	servedNotAfter := func() time.Time {
		t.Helper()
		c, err := f.dial(t, f.clientConfig("api.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.c.Close()
		return c.c.ConnectionState().PeerCertificates[0].NotAfter
	}
	// The files change: the poll finds them.
	next := f.ca.Leaf(t, later, "api.example.test")
	next.Write(t, f.dir, "api")
	deadline := time.Now().Add(5 * time.Second)
	for servedNotAfter().Equal(before) {
		if time.Now().After(deadline) {
			t.Fatal("new certificate files not served after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, err := open.do(); status != 200 {
		t.Errorf("the connection opened before the reload: %d %v; want 200", status, err)
	}

	// A key that does not match its certificate: refused on ReloadTLS,
	// the certificate in use kept.
	bad := f.ca.Leaf(t, later.Add(time.Hour), "api.example.test")
	tlstest.WriteFile(t, filepath.Join(f.dir, "api.crt"), bad.CertPEM)
	f.ReloadTLS()
	if got := servedNotAfter(); !got.Equal(next.NotAfter.Truncate(time.Second)) {
		t.Errorf("after a bad pair, served a certificate expiring %v; want the old one (%v)", got, next.NotAfter)
	}
	if got := metricValue(t, f.testProxy, "switchyard_tls_reload_errors_total"); got < 1 {
		t.Errorf("reload errors = %v; want at least 1", got)
	}
	if !strings.Contains(f.logBuf.String(), filepath.Join(f.dir, "api.crt")) {
		t.Error("the refusal's log line does not name api.crt")
	}
	if got := metricValue(t, f.testProxy, `switchyard_tls_certificate_expiry_seconds{name="api"}`); got != float64(next.NotAfter.Unix()) {
		t.Errorf("expiry of api = %v; want %d", got, next.NotAfter.Unix())
	}
	if status, err := open.do(); status != 200 {
		t.Errorf("the connection opened before the reloads: %d %v; want 200", status, err)
	}
}

// With a client CA, a client without a certificate fails the handshake,
// one with a certificate from that CA is served.
func TestTLSClientCertificates(t *testing.T) {
	clientCA := tlstest.NewCA(t)
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	if err := os.WriteFile(caFile, clientCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	f := startTLSProxy(t, true, func(c *Config) { c.TLS.ClientCA = caFile })
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		conf := f.clientConfig("api.example.test")
		conf.MaxVersion = v
		// TLS 1.3 clients learn of the refusal on their first read.
		if c, err := f.dial(t, conf); err == nil {
			if status, err := c.do(); err == nil {
				t.Errorf("%s without a client certificate: %d; want the handshake failed", tls.VersionName(v), status)
			}
		}
		stranger := tlstest.NewCA(t).Leaf(t, time.Now().Add(time.Hour), "client.test").TLS(t)
		conf.Certificates = []tls.Certificate{stranger}
		if c, err := f.dial(t, conf); err == nil {
			if status, err := c.do(); err == nil {
				t.Errorf("%s with a certificate of another CA: %d; want the handshake failed", tls.VersionName(v), status)
			}
		}
		conf.Certificates = []tls.Certificate{clientCA.Leaf(t, time.Now().Add(time.Hour), "client.test").TLS(t)}
		c, err := f.dial(t, conf)
		if err != nil {
			t.Fatalf("%s with a good client certificate: %v", tls.VersionName(v), err)
		}
		if status, err := c.do(); status != 200 {
			t.Errorf("%s with a good client certificate: %d %v; want 200", tls.VersionName(v), status, err)
		}
	}
	if got := metricValue(t, f.testProxy, `switchyard_tls_handshake_errors_total{reason="client_certificate"}`); got != 4 {
		t.Errorf("handshake errors client_certificate = %v; want 4", got)
	}
}
