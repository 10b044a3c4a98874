package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
)

const (
	depA = "7f3a9c2e51d04b8e7f3a9c2e51d04b8e"
	depB = "0123456789abcdef0123456789abcdef"

	body404 = `{"ok":false,"message":"Unknown resource."}`
	body503 = `{"ok":false,"message":"The requested resource is currently unavailable."}`
)

// twoDeployments starts one backend per deployment and a proxy routing to
// them.
func twoDeployments(t *testing.T, cfg Config) (*testProxy, *backend, *backend) {
	a := startBackend(t, "a-1", nil)
	b := startBackend(t, "b-1", nil)
	tbl := mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Aliases: []string{"prod-search"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("a-1", a.addr, "zone-a", "blue")}},
		&routes.DeploymentSpec{ID: depB, Kind: "kb", Aliases: []string{"prod-dash"}, Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("b-1", b.addr, "zone-b", "blue")}},
	)
	return startProxy(t, cfg, tbl), a, b
}

func TestRouting(t *testing.T) {
	p, _, _ := twoDeployments(t, Config{})
	tests := []struct {
		name     string
		kv       []string
		status   int
		instance string
		body     string
	}{
		{"header id", []string{"X-Found-Cluster", depA}, 200, "a-1", ""},
		{"header id other", []string{"X-Found-Cluster", depB}, 200, "b-1", ""},
		{"header alias", []string{"X-Found-Cluster", "prod-search.es"}, 200, "a-1", ""},
		{"header upper case", []string{"X-Found-Cluster", strings.ToUpper(depA)}, 200, "a-1", ""},
		{"header wins over host", []string{"X-Found-Cluster", depB, "Host", depA + ".example.test"}, 200, "b-1", ""},
		{"host id", []string{"Host", depA + ".example.test"}, 200, "a-1", ""},
		{"host with port", []string{"Host", depB + ".example.test:9200"}, 200, "b-1", ""},
		{"host alias", []string{"Host", "prod-dash.kb.example.test"}, 200, "b-1", ""},
		{"host alias mixed case", []string{"Host", "Prod-Dash.KB.Example.Test"}, 200, "b-1", ""},
		{"alias with wrong kind", []string{"Host", "prod-dash.es.example.test"}, 404, "", body404},
		{"unknown id", []string{"X-Found-Cluster", "ffffffffffffffffffffffffffffffff"}, 404, "", body404},
		{"no key", nil, 404, "", body404},
		{"other domain", []string{"Host", depA + ".example.org"}, 404, "", body404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := get(t, p.url+"/_search?q=1", tt.kv...)
			if status != tt.status {
				t.Fatalf("status = %d; want %d (body %s)", status, tt.status, body)
			}
			if got := h.Get("X-Cloud-Request-Id"); len(got) != 32 {
				t.Errorf("X-Cloud-Request-Id = %q; want 32 hex digits", got)
			}
			if got := h.Get("X-Found-Handling-Instance"); got != tt.instance {
				t.Errorf("X-Found-Handling-Instance = %q; want %q", got, tt.instance)
			}
			if tt.instance != "" {
				if got := h.Get("X-Instance"); got != tt.instance {
					t.Errorf("answered by %q; want %q", got, tt.instance)
				}
				if got := h.Get("X-Found-Handling-Cluster"); got == "" {
					t.Error("X-Found-Handling-Cluster missing")
				}
			}
			if tt.body != "" {
				if body != tt.body {
					t.Errorf("body = %s; want %s", body, tt.body)
				}
				if ct := h.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q; want application/json", ct)
				}
			}
		})
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	p, _, _ := twoDeployments(t, Config{})
	_, _, h1 := get(t, p.url+"/", "X-Found-Cluster", depA)
	_, _, h2 := get(t, p.url+"/", "X-Found-Cluster", "nope")
	if h1.Get("X-Cloud-Request-Id") == h2.Get("X-Cloud-Request-Id") {
		t.Errorf("two requests share request id %q", h1.Get("X-Cloud-Request-Id"))
	}
}

func TestMaintenanceAndZeroWeightGetNoRequests(t *testing.T) {
	live := startBackend(t, "live", nil)
	maint := startBackend(t, "maint", nil)
	green := startBackend(t, "green", nil)
	down := startBackend(t, "down", nil)
	m := inst("maint", maint.addr, "zone-a", "blue")
	m.Maintenance = true
	tbl, err := routes.NewTable("example.test", map[string]routes.ZoneState{"zone-c": routes.ZoneDown}, []*routes.DeploymentSpec{{
		ID: depA, Kind: "es", Serving: map[string]int{"blue": 100, "green": 0},
		Instances: []*routes.Instance{
			inst("live", live.addr, "zone-a", "blue"), m,
			inst("green", green.addr, "zone-b", "green"),
			inst("down", down.addr, "zone-c", "blue"),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, Config{}, tbl)
	for i := 0; i < 200; i++ {
		if status, body, _ := get(t, p.url+"/", "X-Found-Cluster", depA); status != 200 {
			t.Fatalf("request %d: status %d %s", i, status, body)
		}
	}
	if live.hits.Load() != 200 || maint.hits.Load() != 0 || green.hits.Load() != 0 || down.hits.Load() != 0 {
		t.Errorf("hits live=%d maint=%d green(weight 0)=%d down-zone=%d; want 200 0 0 0",
			live.hits.Load(), maint.hits.Load(), green.hits.Load(), down.hits.Load())
	}
}

func TestWeightedSplit(t *testing.T) {
	blue := startBackend(t, "blue", nil)
	green := startBackend(t, "green", nil)
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{
		ID: depA, Kind: "es", Serving: map[string]int{"blue": 75, "green": 25},
		Instances: []*routes.Instance{inst("blue", blue.addr, "z", "blue"), inst("green", green.addr, "z", "green")},
	}))
	const n = 2000
	for i := 0; i < n; i++ {
		get(t, p.url+"/", "X-Found-Cluster", depA)
	}
	share := float64(green.hits.Load()) / n
	if share < 0.20 || share > 0.30 {
		t.Errorf("green got %.1f%% of %d requests; want 25%% ± 5", share*100, n)
	}
}

func TestNoEligibleInstanceIs503(t *testing.T) {
	b := startBackend(t, "m", nil)
	m := inst("m", b.addr, "z", "blue")
	m.Maintenance = true
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{
		ID: depA, Kind: "es", Serving: map[string]int{"blue": 1}, Instances: []*routes.Instance{m},
	}))
	status, body, h := get(t, p.url+"/", "X-Found-Cluster", depA)
	if status != 503 || body != body503 {
		t.Errorf("got %d %s; want 503 %s", status, body, body503)
	}
	if h.Get("X-Cloud-Request-Id") == "" {
		t.Error("X-Cloud-Request-Id missing on 503")
	}
	if b.hits.Load() != 0 {
		t.Errorf("maintenance instance got %d requests", b.hits.Load())
	}
}

func TestUpstreamFailures(t *testing.T) {
	// A port with nothing listening: bind, note the address, close.
	dead := &backend{id: "dead", addr: testutil.RefusingAddr(t)}
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	garbage := startBackend(t, "garbage", func(w http.ResponseWriter, r *http.Request) {
		c, bw, _ := w.(http.Hijacker).Hijack()
		bw.WriteString("HTTP/1.1 2OO OK\r\nthis is not http\r\n\r\n")
		bw.Flush()
		c.Close()
	})
	reset := startBackend(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	dep := func(id string, b *backend) *routes.DeploymentSpec {
		return &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"g": 1},
			Instances: []*routes.Instance{inst(b.id, b.addr, "z", "g")}}
	}
	p := startProxy(t, Config{ResponseHeaderTimeout: 300 * time.Millisecond}, mustTable(t,
		dep("aaaaaaaa", dead), dep("bbbbbbbb", slow), dep("cccccccc", garbage), dep("dddddddd", reset)))
	tests := []struct {
		key    string
		status int
		msg    string
	}{
		{"aaaaaaaa", 502, "The requested resource could not be reached."},
		{"bbbbbbbb", 504, "The requested resource did not respond in time."},
		{"cccccccc", 502, "The requested resource sent an invalid response."},
		{"dddddddd", 502, "The requested resource closed the connection."},
	}
	for _, tt := range tests {
		status, body, h := get(t, p.url+"/", "X-Found-Cluster", tt.key)
		want := `{"ok":false,"message":"` + tt.msg + `"}`
		if status != tt.status || body != want {
			t.Errorf("%s: got %d %s; want %d %s", tt.key, status, body, tt.status, want)
		}
		if h.Get("X-Cloud-Request-Id") == "" {
			t.Errorf("%s: X-Cloud-Request-Id missing", tt.key)
		}
	}
}

func TestHopByHopAndForwardedHeaders(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-End-To-End", "kept")
		w.Write([]byte("ok"))
	})
	p := startProxy(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))

	req, _ := http.NewRequest("GET", p.url+"/x", nil)
	req.Host = depA + ".example.test:9200"
	req.Header.Set("Connection", "keep-alive, X-Drop-Me")
	req.Header.Set("X-Drop-Me", "1")
	req.Header.Set("Keep-Alive", "300")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Kept", "yes")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	got := b.lastRequest()
	for _, h := range []string{"X-Drop-Me", "Keep-Alive", "Te", "Proxy-Authorization", "Upgrade"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("instance got hop-by-hop %s: %q", h, v)
		}
	}
	if got.Header.Get("X-Kept") != "yes" {
		t.Error("end-to-end header X-Kept lost")
	}
	if got.Host != depA+".example.test:9200" {
		t.Errorf("Host = %q; want it passed through", got.Host)
	}
	// 127.0.0.1 is trusted: the incoming list is kept and appended to.
	if v := got.Header.Get("X-Forwarded-For"); v != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q; want %q", v, "203.0.113.7, 127.0.0.1")
	}
	if v := got.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q", v)
	}
	if v := got.Header.Get("X-Forwarded-Host"); v != depA+".example.test:9200" {
		t.Errorf("X-Forwarded-Host = %q", v)
	}
	if got.Header.Get("X-Cloud-Request-Id") != resp.Header.Get("X-Cloud-Request-Id") {
		t.Errorf("request id to instance %q != response %q", got.Header.Get("X-Cloud-Request-Id"), resp.Header.Get("X-Cloud-Request-Id"))
	}
	for _, h := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client got hop-by-hop %s: %q", h, v)
		}
	}
	if resp.Header.Get("X-End-To-End") != "kept" {
		t.Error("response header X-End-To-End lost")
	}
}

func TestUntrustedForwardedForIsReplaced(t *testing.T) {
	p, a, _ := twoDeployments(t, Config{})
	get(t, p.url+"/", "X-Found-Cluster", depA, "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https")
	got := a.lastRequest()
	if v := got.Header.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q; want 127.0.0.1 (spoofed value dropped)", v)
	}
	if v := got.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q; want http", v)
	}
}

func TestSmugglingShapesRefused(t *testing.T) {
	p, a, _ := twoDeployments(t, Config{})
	addr := p.Addr().String()
	head := "POST / HTTP/1.1\r\nHost: " + depA + ".example.test\r\n"
	tests := []struct {
		name, raw string
		streamed  bool // framing error found mid-stream, after the headers went out
	}{
		{"CL and TE", head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"TE and CL", head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", false},
		{"duplicate CL", head + "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", false},
		{"conflicting CL", head + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", false},
		{"CL list", head + "Content-Length: 4, 4\r\n\r\nabcd", false},
		{"TE not chunked", head + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", false},
		{"TE chained", head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
		{"two TE", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"space before colon", head + "Content-Length : 4\r\n\r\nabcd", false},
		{"negative CL", head + "Content-Length: -1\r\n\r\n", false},
		// A chunked body is re-framed as it streams: a broken chunk aborts
		// the upstream request, which the instance sees truncated.
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.hits.Load()
			got := rawRequest(t, addr, tt.raw)
			if !strings.HasPrefix(got, "400 ") {
				t.Errorf("got %q; want 400", got)
			}
			if !tt.streamed && a.hits.Load() != before {
				t.Errorf("request was forwarded to the instance")
			}
		})
	}
}

func TestHeaderAndBodyLimits(t *testing.T) {
	// The instance reads the whole body before it answers, as most do.
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})
	p := startProxy(t, Config{MaxHeaderBytes: 4096, MaxBodyBytes: 1 << 20}, mustTable(t, &routes.DeploymentSpec{
		ID: depA, Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{inst("a", a.addr, "z", "g")}}))
	big := strings.Repeat("x", 8192)
	status, body, _ := get(t, p.url+"/", "X-Found-Cluster", depA, "X-Big", big)
	if status != 431 || body != `{"ok":false,"message":"Request header fields too large."}` {
		t.Errorf("oversized header: got %d %s; want 431 JSON", status, body)
	}
	post := func(r io.Reader, n int64) (int, string) {
		req, _ := http.NewRequest("POST", p.url+"/", r)
		req.ContentLength = n
		req.Header.Set("X-Found-Cluster", depA)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	want413 := `{"ok":false,"message":"Request body too large."}`
	if status, body := post(bytes.NewReader(make([]byte, 2<<20)), 2<<20); status != 413 || body != want413 {
		t.Errorf("oversized Content-Length: got %d %s; want 413", status, body)
	}
	// Chunked: the limit is found while streaming.
	if status, body := post(io.LimitReader(zeroReader{}, 2<<20), -1); status != 413 || body != want413 {
		t.Errorf("oversized chunked body: got %d %s; want 413", status, body)
	}
	if status, _ := post(bytes.NewReader(make([]byte, 512<<10)), 512<<10); status != 200 {
		t.Errorf("body under the limit: got %d; want 200", status)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// patternReader yields n bytes of a repeating pattern.
func patternReader(n int64) io.Reader {
	return io.LimitReader(&pattern{}, n)
}

type pattern struct{ i byte }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = p.i
		p.i = p.i*7 + 1
	}
	return len(b), nil
}

func TestStreamingBothWays(t *testing.T) {
	const size = 32 << 20
	dl := startBackend(t, "dl", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			http.NewResponseController(w).EnableFullDuplex()
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, r.Body) // echo, chunked back (no Content-Length)
			return
		}
		w.Header().Set("Content-Length", "33554432")
		io.Copy(w, patternReader(size))
	})
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("dl", dl.addr, "z", "g")}}))

	want := sha256.New()
	io.Copy(want, patternReader(size))
	wantSum := want.Sum(nil)

	// Download with Content-Length.
	req, _ := http.NewRequest("GET", p.url+"/big", nil)
	req.Header.Set("X-Found-Cluster", depA)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if n != size || !bytes.Equal(h.Sum(nil), wantSum) || resp.ContentLength != size {
		t.Errorf("download: %d bytes (Content-Length %d), digest match %v; want %d", n, resp.ContentLength, bytes.Equal(h.Sum(nil), wantSum), size)
	}

	// Upload chunked, echoed back chunked.
	for _, length := range []int64{-1, size} {
		req, _ = http.NewRequest("POST", p.url+"/echo", patternReader(size))
		req.ContentLength = length
		req.Header.Set("X-Found-Cluster", depA)
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h = sha256.New()
		n, _ = io.Copy(h, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != size || !bytes.Equal(h.Sum(nil), wantSum) {
			t.Errorf("upload (Content-Length %d): status %d, %d bytes echoed, digest match %v", length, resp.StatusCode, n, bytes.Equal(h.Sum(nil), wantSum))
		}
	}
}

func TestHeadAndNoContent(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Length", "1234")
		if r.Method != "HEAD" {
			w.Write(make([]byte, 1234))
		}
	})
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	for i := 0; i < 3; i++ { // the connection stays usable after each
		req, _ := http.NewRequest("HEAD", p.url+"/", nil)
		req.Header.Set("X-Found-Cluster", depA)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 1234 {
			t.Errorf("HEAD: %d Content-Length %d; want 200 1234", resp.StatusCode, resp.ContentLength)
		}
		status, body, _ := get(t, p.url+"/204", "X-Found-Cluster", depA)
		if status != 204 || body != "" {
			t.Errorf("204: got %d %q", status, body)
		}
		status, body, _ = get(t, p.url+"/", "X-Found-Cluster", depA)
		if status != 200 || len(body) != 1234 {
			t.Errorf("GET: got %d, %d bytes", status, len(body))
		}
	}
}

func TestKeepAliveReuseAndStaleConnection(t *testing.T) {
	// The instance closes idle connections long before the proxy does.
	b := startBackend(t, "b", nil, func(s *http.Server) { s.IdleTimeout = time.Second })
	p := startProxy(t, Config{}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	for i := 0; i < 50; i++ {
		if status, _, _ := get(t, p.url+"/", "X-Found-Cluster", depA); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	if d := p.transport.Stats("").Dials; d != 1 {
		t.Errorf("50 sequential requests dialled %d connections; want 1", d)
	}
	// The instance closes the idle connection.
	testutil.EventuallyErr(t, 10*time.Second, "no connection open at the instance after its idle timeout", func() error {
		if n := b.conns.Load(); n != 0 {
			return fmt.Errorf("%d open", n)
		}
		return nil
	})
	if status, body, _ := get(t, p.url+"/", "X-Found-Cluster", depA); status != 200 {
		t.Errorf("request after the instance closed the pooled connection: %d %s; want 200", status, body)
	}
}

func TestHealth(t *testing.T) {
	p := startProxy(t, Config{}, nil)
	if status, body, _ := get(t, p.url+"/_health"); status != 502 || body != `{"ok":false,"status":502}` {
		t.Errorf("before a table: %d %s; want 502", status, body)
	}
	if status, body, _ := get(t, p.url+"/anything", "X-Found-Cluster", depA); status != 503 || body != body503 {
		t.Errorf("request before a table: %d %s; want 503", status, body)
	}
	b := startBackend(t, "b", nil)
	p.Apply(mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	if status, body, _ := get(t, p.url+"/_health"); status != 200 || body != `{"ok":true,"status":200}` {
		t.Errorf("with a table: %d %s; want 200", status, body)
	}
	if status, _, _ := get(t, "http://"+p.AdminAddr().String()+"/_health"); status != 200 {
		t.Errorf("admin /_health: %d; want 200", status)
	}
	if b.hits.Load() != 0 {
		t.Error("/_health was forwarded")
	}
}

func TestDrainLetsRunningRequestFinish(t *testing.T) {
	// The drain delay leaves time to see health say 502 on a loaded
	// machine; the request runs on past it, into the shutdown.
	const drainDelay = 2 * time.Second
	started := make(chan struct{})
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(drainDelay + time.Second)
		w.Write([]byte("done"))
	})
	p := startProxy(t, Config{DrainDelay: drainDelay, ShutdownTimeout: 5 * time.Second}, mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{inst("slow", slow.addr, "z", "g")}}))
	type result struct {
		status int
		body   string
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", p.url+"/", nil)
		req.Header.Set("X-Found-Cluster", depA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b)}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the instance in 10s")
	}
	p.cancel()
	// Draining: still accepting, health says 502.
	c := &http.Client{Timeout: 2 * time.Second}
	testutil.EventuallyErr(t, drainDelay, "health says 502 during the drain", func() error {
		resp, err := c.Get(p.url + "/_health")
		if err != nil {
			t.Fatalf("health during drain: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			return fmt.Errorf("health %d", resp.StatusCode)
		}
		return nil
	})
	r := <-res
	if r.status != 200 || r.body != "done" {
		t.Errorf("running request during drain: %d %q; want 200 done", r.status, r.body)
	}
}

func TestStatusPage(t *testing.T) {
	p, _, _ := twoDeployments(t, Config{})
	p.Reject("file:/x.yaml", io.ErrUnexpectedEOF)
	st := p.Status()
	if !st.OK || st.Table == nil || st.Table.Version != 1 || st.Table.Deployments != 2 || st.Table.Domain != "example.test" {
		t.Errorf("status = %+v; want ok, version 1, 2 deployments", st)
	}
	if st.LastRejected == nil || st.LastRejected.Source != "file:/x.yaml" {
		t.Errorf("last rejected = %+v", st.LastRejected)
	}
	status, body, _ := get(t, "http://"+p.AdminAddr().String()+"/status")
	if status != 200 || !strings.Contains(body, `"version": 1`) {
		t.Errorf("/status: %d %s", status, body)
	}
	status, body, _ = get(t, "http://"+p.AdminAddr().String()+"/metrics")
	for _, m := range []string{"switchyard_requests_total", "switchyard_route_table_version 1", `switchyard_route_table_loads_total{result="rejected"} 1`, "switchyard_upstream_errors_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	_ = status
}

// Slowloris: a client that sends its headers a byte at a time is cut off
// after ClientHeaderTimeout with 408, instead of holding a connection.
func TestSlowHeadersAreCutOff(t *testing.T) {
	p, a, _ := twoDeployments(t, Config{ClientHeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	head := "GET / HTTP/1.1\r\nHost: " + depA + ".example.test\r\nX-Slow: "
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte{head[i%len(head)]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to a slow client: %v", err)
	}
	if took := time.Since(start); resp.StatusCode != 408 || took > 2*time.Second {
		t.Errorf("slow headers: %d after %v; want 408 after about 300ms", resp.StatusCode, took)
	}
	if a.hits.Load() != 0 {
		t.Error("a request with unfinished headers reached the instance")
	}
}

// A client that stops reading a large response is cut once the proxy's
// writes to it have made no progress for ClientIdleTimeout; one that reads
// slowly but steadily gets the whole body, however long that takes.
// (Progress is what the kernel reports: a blocked write is woken once the
// client has drained about a third of the socket's send buffer, which
// grows to a few MiB; the slow reader here reads fast enough for that to
// take well under the timeout.)
func TestClientThatStopsReadingIsCut(t *testing.T) {
	const (
		idle = time.Second
		size = 32 << 20
	)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	big := startBackend(t, "big-1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	p := startProxy(t, Config{ClientIdleTimeout: idle}, mustTable(t,
		&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("big-1", big.addr, "zone-a", "blue")}}))

	request := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: "+depA+".example.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Stops reading: after a pause of three idle timeouts, what is left to
	// read ends well short of the body.
	stopped := request()
	time.Sleep(3 * idle)
	stopped.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, stopped)
	if n >= size || isTimeoutErr(err) {
		t.Errorf("client that stopped reading: got %d bytes (%v); want the connection cut short of %d", n, err, size)
	}

	// Reads 64 KiB every 10ms for three idle timeouts, then the rest.
	slow := request()
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var got int64
	for start := time.Now(); time.Since(start) < 3*idle; {
		m, err := resp.Body.Read(buf)
		got += int64(m)
		if err != nil {
			t.Fatalf("slow reader cut after %d bytes: %v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got >= size {
		t.Fatalf("the slow reader got the whole body in its slow phase: the test proves nothing")
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	if got+rest != size || err != nil {
		t.Errorf("slow reader: %d bytes (%v); want all %d", got+rest, err, size)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
