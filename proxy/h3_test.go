package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// startH3Proxy is startH2Proxy with HTTP/3 on; its client speaks HTTP/3.
func startH3Proxy(t *testing.T, handler http.HandlerFunc, tune func(*Config)) (*h2Fixture, *http.Client) {
	t.Helper()
	f := startH2Proxy(t, handler, func(c *Config) {
		c.TLS.HTTP3 = true
		if tune != nil {
			tune(c)
		}
	})
	tr := &http3.Transport{TLSClientConfig: f.clientConfig("api.example.test")}
	t.Cleanup(func() { tr.Close() })
	return f, &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (f *h2Fixture) h3URL(path string) string { return "https://" + f.HTTP3Addr().String() + path }

// HTTP/3 drives the same request path: the instance answers, learns the
// scheme is https, and the request is logged and counted as HTTP/3. The
// TLS listener's responses, over HTTP/1.1 and HTTP/2, announce it with
// Alt-Svc on the port it serves; the plain listener's do not.
func TestHTTP3RequestPath(t *testing.T) {
	f, h3 := startH3Proxy(t, nil, nil)
	udp := f.HTTP3Addr().(*net.UDPAddr)
	if tcp := f.TLSAddr().(*net.TCPAddr); udp.Port != tcp.Port {
		t.Fatalf("HTTP/3 on UDP port %d; want the TLS listener's, %d", udp.Port, tcp.Port)
	}
	req, _ := http.NewRequest("GET", f.h3URL("/_search"), nil)
	req.Header.Set("X-Found-Cluster", depA)
	resp, err := h3.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 || resp.Header.Get("X-Instance") != "a-1" {
		t.Fatalf("%s %d from %q; want HTTP/3 200 from a-1", resp.Proto, resp.StatusCode, resp.Header.Get("X-Instance"))
	}
	if got := f.backend.lastRequest().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto at the instance %q", got)
	}
	want := `h3=":` + strconv.Itoa(udp.Port) + `"; ma=86400`
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: f.clientConfig("api.example.test")}}
	for _, c := range []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"HTTP/1.1 over TLS", h1, f.url("/_search"), want},
		{"HTTP/2", f.client, f.url("/_search"), want},
		{"HTTP/1.1 over TLS, answered by the proxy", h1, f.url("/nowhere"), want},
		{"plain HTTP/1.1", h1, f.testProxy.url + "/_search", ""},
	} {
		req, _ := http.NewRequest("GET", c.url, nil)
		if !strings.HasSuffix(c.url, "/nowhere") {
			req.Header.Set("X-Found-Cluster", depA)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Alt-Svc"); got != c.want {
			t.Errorf("%s: Alt-Svc %q; want %q", c.name, got, c.want)
		}
	}
	_, m, _ := get(t, "http://"+f.AdminAddr().String()+"/metrics")
	if want := `switchyard_requests_total{code_class="2xx",protocol="HTTP/3"} 1`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	var n int
	for _, e := range f.accessLog(t) {
		if e["protocol"] == "HTTP/3" {
			n++
			if e["tls_version"] != "TLSv1.3" || e["client_ip"] != "127.0.0.1" || e["status_code"] != 200.0 {
				t.Errorf("HTTP/3 access log entry %v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d HTTP/3 access log entries; want 1", n)
	}
}

// A large body streams both ways over HTTP/3 too, under the same heap
// bound as the other protocols (TestLargeBodiesEveryProtocol).
func TestHTTP3StreamsLargeBodies(t *testing.T) {
	f, h3 := startH3Proxy(t, nil, nil)
	checkStreamEcho(t, h3, f.h3URL(""), bigBodySize(), 3)
}

// On SIGTERM's drain a request running over HTTP/3 still finishes, and
// the server then stops (GOAWAY, then the connections close).
func TestHTTP3Drain(t *testing.T) {
	release := make(chan struct{})
	f, h3 := startH3Proxy(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}, func(c *Config) { c.DrainDelay = 100 * time.Millisecond; c.ShutdownTimeout = 10 * time.Second })
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.h3URL("/_search"), nil)
		req.Header.Set("X-Found-Cluster", depA)
		resp, err := h3.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.backend.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan struct{})
	f.stopped = true
	go func() { f.cancel(); <-f.done; close(stopped) }()
	// Past the drain delay the listeners close and HTTP/3 sends GOAWAY;
	// the plain listener refusing connections says it has begun.
	testutil.Eventually(t, 5*time.Second, "the shutdown begins", func() bool {
		c, err := net.DialTimeout("tcp", f.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if r := <-res; r.err != nil || r.body != "done" {
		t.Errorf("the request running at the drain: %q, %v", r.body, r.err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not stop")
	}
	req, _ := http.NewRequest("GET", f.h3URL("/_search"), nil)
	req.Header.Set("X-Found-Cluster", depA)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if resp, err := h3.Do(req.WithContext(ctx)); err == nil {
		resp.Body.Close()
		t.Errorf("a request after the drain was answered %d", resp.StatusCode)
	}
}

// A kernel that gives the UDP socket less buffer than QUIC wants (a
// proxy without the privilege to go past net.core.rmem_max) is reported
// in one line naming the sysctl.
func TestHTTP3SmallBuffersReported(t *testing.T) {
	max, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no /proc/sys/net/core/rmem_max")
	}
	limit, _ := strconv.Atoi(strings.TrimSpace(string(max)))
	saved := forceSockBuffers
	forceSockBuffers = func(syscall.RawConn, int) {}
	defer func() { forceSockBuffers = saved }()
	p := startProxy(t, Config{}, nil)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if sizeQUICBuffers(p.Server, pc, 4*limit+4096) {
		t.Fatal("buffers past net.core.rmem_max reported as given")
	}
	if log := p.logBuf.String(); !strings.Contains(log, "sysctl -w net.core.rmem_max=") {
		t.Errorf("no line naming the sysctl in the log:\n%s", log)
	}
	if !sizeQUICBuffers(p.Server, pc, 16<<10) {
		t.Error("16 KiB buffers reported as refused")
	}
}

// The HTTP/3 server lets a connection open --max-concurrent-streams
// request streams at once and no more: the QUIC peer is told the limit,
// and a stream over it cannot be opened until one ends.
func TestHTTP3StreamLimit(t *testing.T) {
	f, _ := startH3Proxy(t, nil, func(c *Config) { c.MaxConcurrentStreams = 5 })
	conf := f.clientConfig("api.example.test")
	conf.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, f.HTTP3Addr().String(), conf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	var opened int
	for opened < 6 {
		if _, err := conn.OpenStream(); err != nil {
			if !errors.Is(err, &quic.StreamLimitReachedError{}) {
				t.Fatalf("stream %d: %v; want the stream limit", opened+1, err)
			}
			break
		}
		opened++
	}
	if opened != 5 {
		t.Errorf("%d streams opened at once; want 5", opened)
	}
}
