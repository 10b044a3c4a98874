package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// recorder is an instance on a real socket that records the header block
// of every request it reads, byte for byte, and answers each with 200 and
// a body naming the request's sequence number.
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []string // header blocks as received
	// respHeaders are extra response header lines ("Name: v\r\n").
	respHeaders string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var block strings.Builder
		cl := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			block.WriteString(line)
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				cl, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(cl)); err != nil {
			return
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, block.String())
		n := len(r.reqs)
		extra := r.respHeaders
		r.mu.Unlock()
		body := "request " + strconv.Itoa(n)
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n"+extra+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
			return
		}
	}
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// headerLines returns the values of every line of the header name in a
// recorded header block.
func headerLines(block, name string) []string {
	var vals []string
	for _, line := range strings.Split(block, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// exchangeRaw sends raw on a new connection and returns the whole answer
// (up to the server's close, or 2 s).
func exchangeRaw(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
		// One response is all these tests read: stop at its end.
		if resp := out.String(); strings.Contains(resp, "\r\n\r\n") {
			head, body, _ := strings.Cut(resp, "\r\n\r\n")
			if l := headerLines(head, "Content-Length"); len(l) == 1 {
				if n, _ := strconv.Atoi(l[0]); len(body) >= n {
					break
				}
			}
		}
	}
	return out.String()
}

func statusOf(resp string) int {
	if len(resp) < 12 {
		return 0
	}
	n, _ := strconv.Atoi(resp[9:12])
	return n
}

func recorderTable(t *testing.T, r *recorder, allow ...string) *routes.Table {
	return mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Aliases: []string{"app"}, Allow: allow,
		Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{inst("i-1", r.addr, "zone-a", "blue")}})
}

// Requests whose framing, form or routing is ambiguous get a 4xx with the
// proxy's JSON body, and the instance sees nothing of them.
func TestAmbiguousRequestsRefused(t *testing.T) {
	r := startRecorder(t)
	p := startProxy(t, Config{}, recorderTable(t, r))
	addr := p.Addr().String()
	const host = "Host: app.es.example.test\r\n"
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"Transfer-Encoding identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n", 400},
		{"Transfer-Encoding identity with a length", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"chunked and a length", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"header name with a space", "GET / HTTP/1.1\r\n" + host + "Foo Bar: x\r\n\r\n", 400},
		{"two X-Found-Cluster naming different deployments", "GET / HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: app.es\r\nX-Found-Cluster: other.es\r\n\r\n", 400},
		{"absolute form naming another host", "GET http://other.es.example.test/ HTTP/1.1\r\n" + host + "\r\n", 400},
		{"absolute form of another scheme", "GET ftp://app.es.example.test/ HTTP/1.1\r\n" + host + "\r\n", 400},
		{"CONNECT", "CONNECT app.es.example.test:443 HTTP/1.1\r\nHost: app.es.example.test:443\r\n\r\n", 405},
		{"non-ASCII byte in the target", "GET /\xff HTTP/1.1\r\n" + host + "\r\n", 400},
		{"fragment in the target", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", 400},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\nX-Found-Cluster: app.es\r\n\r\n", 400},
		{"HTTP/0.0", "GET / HTTP/0.0\r\nX-Found-Cluster: app.es\r\n" + host + "\r\n", 400},
		{"chunk size that is not hex", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk size over 64 bits", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", 400},
	} {
		resp := exchangeRaw(t, addr, tc.raw)
		if got := statusOf(resp); got != tc.status {
			t.Errorf("%s: status %d; want %d\n%s", tc.name, got, tc.status, resp)
			continue
		}
		if !strings.Contains(resp, `{"ok":false,"message":`) {
			t.Errorf("%s: no JSON body:\n%s", tc.name, resp)
		}
		if !strings.Contains(strings.ToLower(resp), "connection: close") {
			t.Errorf("%s: connection kept open:\n%s", tc.name, resp)
		}
	}
	if got := r.requests(); len(got) != 0 {
		t.Errorf("the instance saw %d requests; want none:\n%q", len(got), got)
	}
}

// What the instance sees of headers a client repeats or names in
// Connection: one value each, set by the proxy where the proxy sets it.
func TestRepeatedHeadersForwardedOnce(t *testing.T) {
	r := startRecorder(t)
	p := startProxy(t, Config{}, recorderTable(t, r))
	addr := p.Addr().String()
	const host = "Host: app.es.example.test\r\n"
	for _, tc := range []struct {
		name, raw string
		check     func(block string) string // "" when right
	}{
		{"X-Forwarded-* and X-Cloud-Request-Id twice from an untrusted client",
			"GET / HTTP/1.1\r\n" + host + "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 198.51.100.2\r\n" +
				"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Host: evil2\r\n" +
				"X-Cloud-Request-Id: forged1\r\nX-Cloud-Request-Id: forged2\r\n\r\n",
			func(b string) string {
				for name, want := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.es.example.test"} {
					if got := headerLines(b, name); len(got) != 1 || got[0] != want {
						return name + ": " + strings.Join(got, " | ")
					}
				}
				if got := headerLines(b, "X-Cloud-Request-Id"); len(got) != 1 || strings.HasPrefix(got[0], "forged") {
					return "X-Cloud-Request-Id: " + strings.Join(got, " | ")
				}
				return ""
			}},
		{"two equal X-Found-Cluster",
			"GET / HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: app.es\r\nx-found-cluster: APP.es\r\n\r\n",
			func(b string) string {
				if got := headerLines(b, "X-Found-Cluster"); len(got) != 1 {
					return "X-Found-Cluster: " + strings.Join(got, " | ")
				}
				return ""
			}},
		{"Connection naming Host and the proxy's headers",
			"GET / HTTP/1.1\r\n" + host + "Connection: Host, X-Forwarded-Host, X-Forwarded-For, Content-Length, X-Other\r\nX-Other: 1\r\n\r\n",
			func(b string) string {
				if got := headerLines(b, "Host"); len(got) != 1 || got[0] != "app.es.example.test" {
					return "Host: " + strings.Join(got, " | ")
				}
				if got := headerLines(b, "X-Forwarded-Host"); len(got) != 1 {
					return "X-Forwarded-Host: " + strings.Join(got, " | ")
				}
				if got := headerLines(b, "X-Other"); len(got) != 0 {
					return "X-Other kept though Connection names it"
				}
				return ""
			}},
		{"absolute form naming the Host",
			"GET http://APP.es.example.test/p?q=1 HTTP/1.1\r\n" + host + "\r\n",
			func(b string) string {
				if !strings.HasPrefix(b, "GET /p?q=1 HTTP/1.1\r\n") {
					return "request line " + strings.SplitN(b, "\r\n", 2)[0]
				}
				return ""
			}},
	} {
		before := len(r.requests())
		resp := exchangeRaw(t, addr, tc.raw)
		if statusOf(resp) != 200 {
			t.Errorf("%s: %s", tc.name, resp)
			continue
		}
		reqs := r.requests()
		if len(reqs) != before+1 {
			t.Errorf("%s: the instance saw %d requests; want 1", tc.name, len(reqs)-before)
			continue
		}
		if msg := tc.check(reqs[before]); msg != "" {
			t.Errorf("%s: instance saw %s\n%s", tc.name, msg, reqs[before])
		}
	}
}

// Behind a trusted hop that appends its own X-Forwarded-For line (HAProxy's
// option forwardfor), the client's forged first line does not pass the
// traffic filter, and the access log records the address the hop gave.
func TestTrustedHopLinesReadAsOneList(t *testing.T) {
	r := startRecorder(t)
	logPath := t.TempDir() + "/access.log"
	cfg := Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	cfg.AccessLog.Path = logPath
	p := startProxy(t, cfg, recorderTable(t, r, "203.0.113.0/24"))
	addr := p.Addr().String()
	const host = "Host: app.es.example.test\r\n"
	// The client forged an allowed address; the hop appended the real one.
	resp := exchangeRaw(t, addr, "GET /forged HTTP/1.1\r\n"+host+"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n")
	if statusOf(resp) != 403 {
		t.Fatalf("forged first line: %s; want 403", resp)
	}
	// The real client is allowed; a forged line after... comes from the hop.
	resp = exchangeRaw(t, addr, "GET /real HTTP/1.1\r\n"+host+"X-Forwarded-For: 198.51.100.66\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
	if statusOf(resp) != 200 {
		t.Fatalf("allowed client behind the hop: %s", resp)
	}
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("instance saw %d requests; want 1", len(reqs))
	}
	if got := headerLines(reqs[0], "X-Forwarded-For"); len(got) != 1 || got[0] != "198.51.100.66, 203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For sent on: %q", got)
	}
	p.stop(t) // flushes the access log
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := strings.Split(strings.TrimSpace(string(data)), "\n")
	var sawForged, sawReal bool
	for _, line := range log {
		switch {
		case strings.Contains(line, `"path":"/forged"`):
			sawForged = strings.Contains(line, `"client_ip":"198.51.100.7"`)
		case strings.Contains(line, `"path":"/real"`):
			sawReal = strings.Contains(line, `"client_ip":"203.0.113.9"`)
		}
	}
	if !sawForged || !sawReal {
		t.Errorf("access log client_ip not the hop's address:\n%s", strings.Join(log, "\n"))
	}
}

// The proxy's own response headers reach the client once, whatever the
// instance sent.
func TestOwnResponseHeadersOnce(t *testing.T) {
	r := startRecorder(t)
	r.respHeaders = "X-Found-Handling-Instance: forged\r\nX-Found-Handling-Instance: forged2\r\nX-Cloud-Request-Id: forged\r\nConnection: Content-Length, X-Found-Handling-Cluster\r\n"
	p := startProxy(t, Config{}, recorderTable(t, r))
	resp := exchangeRaw(t, p.Addr().String(), "GET / HTTP/1.1\r\nHost: app.es.example.test\r\n\r\n")
	head, body, _ := strings.Cut(resp, "\r\n\r\n")
	if statusOf(resp) != 200 || body != "request 1" {
		t.Fatalf("%s", resp)
	}
	for name, want := range map[string]string{"X-Found-Handling-Instance": "i-1", "X-Found-Handling-Cluster": depA} {
		if got := headerLines(head, name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q; want %q", name, got, want)
		}
	}
	if got := headerLines(head, "X-Cloud-Request-Id"); len(got) != 1 || got[0] == "forged" {
		t.Errorf("X-Cloud-Request-Id: %q", got)
	}
}

// /_health is answered by the proxy for every spelling of its path that
// an instance would take for it, and never forwarded.
func TestHealthPathSpellings(t *testing.T) {
	r := startRecorder(t)
	p := startProxy(t, Config{}, recorderTable(t, r))
	for _, path := range []string{"/_health", "/x/../_health", "//_health", "/%5Fhealth", "/_health?x=1"} {
		resp := exchangeRaw(t, p.Addr().String(), "GET "+path+" HTTP/1.1\r\nHost: app.es.example.test\r\n\r\n")
		if statusOf(resp) != 200 || !strings.HasSuffix(resp, `{"ok":true,"status":200}`) {
			t.Errorf("%s: %s", path, resp)
		}
	}
	if got := r.requests(); len(got) != 0 {
		t.Errorf("instance saw %q", got)
	}
}

// countingListener counts the connections it hands out.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Serve takes any listener: the proxy serves what it accepts.
func TestServeOnAGivenListener(t *testing.T) {
	r := startRecorder(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s, err := New(Config{AdminListen: "-", AccessLog: accessLogDiscard(), Logger: discardLogger(), DrainDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(recorderTable(t, r))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, cl) }()
	<-s.Ready()
	if got := s.Addr().String(); got != ln.Addr().String() {
		t.Errorf("Addr %s; want the listener's %s", got, ln.Addr())
	}
	resp := exchangeRaw(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: app.es.example.test\r\n\r\n")
	if statusOf(resp) != 200 || cl.n.Load() != 1 {
		t.Errorf("%d connections accepted; response %s", cl.n.Load(), resp)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
