package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/routes"
)

// backend is a real HTTP server on loopback standing in for an instance.
type backend struct {
	id       string
	addr     string
	hits     atomic.Int64
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	last     *http.Request // headers of the last request
	conns    atomic.Int64  // open connections
	accepted atomic.Int64  // connections accepted
}

// startBackend serves h (or the default echo handler) on 127.0.0.1:0.
func startBackend(t *testing.T, id string, h http.HandlerFunc, configure ...func(*http.Server)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{id: id, addr: ln.Addr().String(), ln: ln}
	if h == nil {
		h = b.echo
	}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			b.mu.Lock()
			b.last = r.Clone(context.Background())
			b.mu.Unlock()
			h(w, r)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				b.conns.Add(1)
				b.accepted.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.conns.Add(-1)
			}
		},
	}
	for _, f := range configure {
		f(b.srv)
	}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// echo answers with the instance id and echoes any request body.
func (b *backend) echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance", b.id)
	if r.ContentLength != 0 {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		io.Copy(w, r.Body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"instance": b.id, "path": r.URL.RequestURI()})
}

func (b *backend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// inst makes an instance of a test table.
func inst(id, addr, zone, gen string) *routes.Instance {
	return &routes.Instance{ID: id, Addr: addr, Zone: zone, Generation: gen}
}

func mustTable(t *testing.T, deps ...*routes.DeploymentSpec) *routes.Table {
	t.Helper()
	tbl, err := routes.NewTable("example.test", nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	tbl.Version, tbl.Source, tbl.LoadedAt = 1, "test", time.Now()
	return tbl
}

// testProxy is a Server running on loopback for one test.
type testProxy struct {
	*Server
	url    string
	cancel context.CancelFunc
	done   chan error
	logBuf *testutil.Buffer

	stopped bool
}

// startProxy runs a proxy with cfg (listeners on free ports) serving tbl
// (nil: no table yet).
func startProxy(t testing.TB, cfg Config, tbl *routes.Table) *testProxy {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.AdminListen == "" {
		cfg.AdminListen = "127.0.0.1:0"
	}
	if cfg.DrainDelay == 0 {
		cfg.DrainDelay = time.Millisecond
	}
	if cfg.AccessLog.Path == "" && !cfg.AccessLog.Off {
		cfg.AccessLog.Path = t.TempDir() + "/access.log"
	}
	logBuf := &testutil.Buffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tbl != nil {
		s.Apply(tbl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testProxy{Server: s, cancel: cancel, done: make(chan error, 1), logBuf: logBuf}
	go func() { p.done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-p.done:
		t.Fatalf("proxy did not start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("proxy did not start in 5s")
	}
	p.url = "http://" + s.Addr().String()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop stops the proxy and waits for Run to return; again, it does nothing.
func (p *testProxy) stop(t testing.TB) {
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("proxy did not stop in 10s")
	}
}

// rawRequest writes raw bytes to the proxy and returns the raw response
// (until the server closes, or 2s).
func rawRequest(t *testing.T, addr, raw string) string {
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
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "ERROR " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// get sends a GET with optional header pairs and returns status, body, headers.
func get(t *testing.T, url string, kv ...string) (int, string, http.Header) {
	t.Helper()
	return getVia(t, client, url, kv...)
}

// getVia is get with the client c.
func getVia(t *testing.T, c *http.Client, url string, kv ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.EqualFold(kv[i], "Host") {
			req.Host = kv[i+1]
		} else {
			req.Header.Set(kv[i], kv[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// postX sends a POST of "x" for the deployment key and returns the status.
func postX(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader("x"))
	req.Header.Set("X-Found-Cluster", key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// accessLogDiscard is an access log config that writes to /dev/null.
func accessLogDiscard() accesslog.Config {
	return accesslog.Config{Path: "/dev/null"}
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
