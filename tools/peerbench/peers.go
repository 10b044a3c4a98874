package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/switchyard/switchyard/internal/testing/freeport"
	"github.com/switchyard/switchyard/loadtest"
)

// Targets, in report order. "direct" is the client talking to the backend
// with no proxy in between: the ceiling of the others. "haproxy-splice" is
// HAProxy with "option splice-response" (off in HAProxy by default and in
// the "haproxy" target, the goal's peer); it runs only when asked for.
// "switchyard-nap" is Switchyard with idle naps (--idle-nap, -nap), the
// setting for a proxy on one CPU that trades a little latency for fewer
// wake-ups.
// "caddy" is Caddy, the peer of the HTTP/2 and HTTP/3 scenarios.
var targetNames = []string{"direct", "nginx", "haproxy", "haproxy-splice", "caddy", "switchyard", "switchyard-nap"}

// defaultTargets are the targets run when -targets is not given.
var defaultTargets = []string{"direct", "nginx", "haproxy", "caddy", "switchyard", "switchyard-nap"}

// keyHeader carries the route key of every request, to every target.
const keyHeader = "X-Found-Cluster"

// Map values: the nginx upstream, the HAProxy backend of the templates,
// and Caddy's mark of a known deployment.
const (
	nginxUpstream  = "backend"
	haproxyBackend = "deployments"
	caddyMapValue  = "known"
)

// tmplData fills the templates in configs/bench.
type tmplData struct {
	Dir         string // where the generated files of the run are
	Port        int    // listen port
	BackendPort int    // the nginx backend
	Splice      bool   // HAProxy: option splice-response (haproxy-splice)
	// With TLS the target serves TLS on Port with the run's certificate:
	// Cert and Key (PEM files), CertKey (both in one, for HAProxy).
	TLS                bool
	Cert, Key, CertKey string
}

// deploymentIDs returns n distinct deployment IDs of 32 lowercase hex
// digits, the same on every run.
func deploymentIDs(n int) []string {
	r := rand.New(rand.NewPCG(0x5717c4, 0xa4d))
	seen := make(map[string]bool, n)
	ids := make([]string, 0, n)
	var b [16]byte
	for len(ids) < n {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		id := hex.EncodeToString(b[:])
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// routesYAML is a Switchyard routes file with one deployment per ID, each
// with one instance: the backend.
func routesYAML(ids []string, backend string) string {
	var b strings.Builder
	b.WriteString("# Written by peerbench: every deployment has one instance, the nginx backend.\n")
	b.WriteString("domain: bench.test\ndeployments:\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "  - id: %q\n    kind: es\n    serving: {blue: 100}\n    instances:\n", id)
		fmt.Fprintf(&b, "      - {id: i-%04d, addr: %q, zone: zone-a, generation: blue}\n", i, backend)
	}
	return b.String()
}

// mapFile is a lookup table of the IDs for a peer: one "ID<sep>VALUE<end>"
// line each (nginx: "ID backend;", HAProxy: "ID deployments").
func mapFile(ids []string, sep, value, end string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + sep + value + end + "\n")
	}
	return b.String()
}

// writeScenarioFiles writes what every target needs for sc into sc.dir:
// the routes file, the peers' maps, and the wrk script for random keys.
func writeScenarioFiles(sc *scenario, backend string) error {
	sc.ids = deploymentIDs(sc.deployments)
	files := map[string]string{
		"routes.yaml": routesYAML(sc.ids, backend),
		"nginx.map":   mapFile(sc.ids, " ", nginxUpstream, ";"),
		"haproxy.map": mapFile(sc.ids, " ", haproxyBackend, ""),
		"caddy.map":   mapFile(sc.ids, " ", caddyMapValue, ""),
	}
	if err := os.MkdirAll(sc.dir, 0o755); err != nil {
		return err
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(sc.dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if len(sc.ids) > 1 {
		sc.luaScript = filepath.Join(sc.dir, "keys.lua")
		return writeWrkScript(sc.luaScript, sc.ids)
	}
	return nil
}

// renderTemplate fills the template file src with data into dst.
func renderTemplate(src, dst string, data tmplData) error {
	t, err := template.New(filepath.Base(src)).Option("missingkey=error").ParseFiles(src)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := t.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	return f.Close()
}

// startBackend writes the backend's static files and starts the nginx
// backend on peerbench's own CPU.
func (b *bench) startBackend(ctx context.Context) error {
	www := filepath.Join(b.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	for name, size := range map[string]int{"4k": 4 << 10, "1m": 1 << 20} {
		if err := os.WriteFile(filepath.Join(www, name), loadtest.PatternBody(size), 0o644); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	conf := filepath.Join(b.dir, "backend.nginx.conf")
	if err := renderTemplate(filepath.Join(b.o.configDir, "backend.nginx.conf"), conf, tmplData{Dir: b.dir, Port: port}); err != nil {
		return err
	}
	p, err := b.procs.start(startSpec{
		name: "nginx backend", argv: []string{b.tools.nginx, "-c", conf}, cpu: -1,
		log: filepath.Join(b.dir, "backend.log"),
	})
	if err != nil {
		return err
	}
	b.backend, b.backendPort = p, port
	for _, sc := range []struct {
		path string
		size int
	}{{"/small", 2}, {"/4k", 4 << 10}, {"/1m", 1 << 20}} {
		if err := waitReady(ctx, checkClient(nil), p, b.backendURL(sc.path), "", sc.size); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) backendURL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(b.backendPort) + path
}

// startTarget starts the proxy of target for sc, pinned to the proxy CPU,
// and returns it with the URL to load. The direct target starts nothing.
func (b *bench) startTarget(ctx context.Context, sc *scenario, target string) (*proc, string, error) {
	if target == "direct" {
		return nil, b.backendURL(sc.path), nil
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	data := tmplData{Dir: sc.dir, Port: port, BackendPort: b.backendPort}
	if sc.tls() {
		data.TLS, data.Cert, data.Key, data.CertKey = true, b.certs.cert, b.certs.key, b.certs.certKey
	}
	spec := startSpec{name: target, cpu: b.o.proxyCPU, log: filepath.Join(sc.dir, target+".log")}
	kind := target
	if slices.Contains(b.o.switchyardTargets(), target) {
		kind = "switchyard" // with naps or a variant's flags below
	}
	switch kind {
	case "nginx":
		conf := filepath.Join(sc.dir, "proxy.nginx.conf")
		if err := renderTemplate(filepath.Join(b.o.configDir, "proxy.nginx.conf"), conf, data); err != nil {
			return nil, "", err
		}
		spec.argv = []string{b.tools.nginx, "-c", conf}
	case "haproxy", "haproxy-splice":
		data.Splice = target == "haproxy-splice"
		conf := filepath.Join(sc.dir, target+".cfg")
		if err := renderTemplate(filepath.Join(b.o.configDir, "haproxy.cfg"), conf, data); err != nil {
			return nil, "", err
		}
		spec.argv = []string{b.tools.haproxy, "-f", conf, "-db"}
		spec.discard = true // the access log
	case "caddy":
		conf := filepath.Join(sc.dir, "Caddyfile")
		if err := renderTemplate(filepath.Join(b.o.configDir, "Caddyfile"), conf, data); err != nil {
			return nil, "", err
		}
		spec.argv = []string{b.tools.caddy, "run", "--adapter", "caddyfile", "--config", conf}
		spec.discard = true // the access log
		spec.env = []string{"GOMAXPROCS=1", "HOME=" + sc.dir, "XDG_DATA_HOME=" + sc.dir, "XDG_CONFIG_HOME=" + sc.dir}
	case "switchyard":
		admin, err := freePort()
		if err != nil {
			return nil, "", err
		}
		bin := b.tools.switchyard
		if vb := b.o.variantBinary(target); vb != "" {
			bin = vb
		}
		listen := port
		if sc.tls() {
			// The plain listener on a port of its own, the TLS one on port.
			if listen, err = freePort(); err != nil {
				return nil, "", err
			}
		}
		spec.argv = []string{bin, "proxy",
			"--routes-file", filepath.Join(sc.dir, "routes.yaml"),
			"--listen", "127.0.0.1:" + strconv.Itoa(listen),
			"--admin-listen", "127.0.0.1:" + strconv.Itoa(admin),
			"--access-log", "/dev/null",
			"--drain-delay", "1ms", "--shutdown-timeout", "1s"}
		if sc.tls() {
			spec.argv = append(spec.argv, "--tls-listen", "127.0.0.1:"+strconv.Itoa(port),
				"--tls-cert", b.certs.cert, "--tls-key", b.certs.key)
		}
		if sc.kind == kindH3 {
			spec.argv = append(spec.argv, "--http3")
		}
		if target == "switchyard-nap" {
			spec.argv = append(spec.argv, "--idle-nap", b.o.nap.String())
		}
		spec.argv = append(spec.argv, b.o.syFlags...)
		spec.argv = append(spec.argv, b.o.variantFlags(target)...)
		spec.env = []string{"GOMAXPROCS=1"}
	default:
		return nil, "", fmt.Errorf("unknown target %q", target)
	}
	p, err := b.procs.start(spec)
	if err != nil {
		return nil, "", err
	}
	base, client := "http://127.0.0.1:"+strconv.Itoa(port), checkClient(nil)
	if sc.tls() {
		base, client = "https://127.0.0.1:"+strconv.Itoa(port), checkClient(b.certs.clientTLS())
	}
	url := base + sc.path
	if err := waitReady(ctx, client, p, url, sc.ids[len(sc.ids)-1], sc.bodySize); err != nil {
		b.procs.stop(p, time.Second)
		return nil, "", err
	}
	// The lookup must be real: a key that is in no table gets 404.
	if err := checkUnknownKey(ctx, client, url); err != nil {
		b.procs.stop(p, time.Second)
		return nil, "", fmt.Errorf("%s: %w", target, err)
	}
	// And every proxy does the same header work as Switchyard.
	if err := checkHeaders(ctx, client, base+headersPath, sc.ids[0], sc.tls()); err != nil {
		b.procs.stop(p, time.Second)
		return nil, "", fmt.Errorf("%s: %w", target, err)
	}
	return p, url, nil
}

// headersPath is the backend's location that answers with the forwarding
// headers it was sent, one per line, in the order of forwardedHeaders.
const headersPath = "/_headers"

// The headers Switchyard adds to a forwarded request, which every proxy
// target must add too: the same work, and the same bytes for the backend
// to parse.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Cloud-Request-Id"}

// The headers Switchyard adds to a response, which every proxy target
// must add too.
var handlingHeaders = []string{"X-Cloud-Request-Id", "X-Found-Handling-Cluster", "X-Found-Handling-Instance"}

// checkHeaders checks that the proxy at url (the backend's headersPath
// through it) adds the headers Switchyard adds: the forwarding ones to the
// request, the handling ones to the response, the same request ID to both,
// and the deployment (key) as the handling cluster.
func checkHeaders(ctx context.Context, client *http.Client, url, key string, tls bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(keyHeader, key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	seen := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(seen) != len(forwardedHeaders) {
		return fmt.Errorf("GET %s: the backend answered %q; want %d lines", url, body, len(forwardedHeaders))
	}
	var missing []string
	for i, h := range forwardedHeaders {
		if seen[i] == "" {
			missing = append(missing, "request "+h)
		}
	}
	for _, h := range handlingHeaders {
		if resp.Header.Get(h) == "" {
			missing = append(missing, "response "+h)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("does not add the headers Switchyard adds: no %s", strings.Join(missing, ", "))
	}
	if proto, want := seen[1], map[bool]string{false: "http", true: "https"}[tls]; proto != want {
		return fmt.Errorf("X-Forwarded-Proto %q sent to the backend; want %q", proto, want)
	}
	if id, sent := resp.Header.Get("X-Cloud-Request-Id"), seen[len(seen)-1]; id != sent {
		return fmt.Errorf("request ID %q in the response, %q sent to the backend; want the same", id, sent)
	}
	if got := resp.Header.Get("X-Found-Handling-Cluster"); got != key {
		return fmt.Errorf("X-Found-Handling-Cluster %q; want the deployment %s", got, key)
	}
	return nil
}

// checkUnknownKey checks that url answers 404 to a route key of no
// deployment.
func checkUnknownKey(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(keyHeader, "0123456789abcdef0123456789abcdef")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("unknown route key: status %d; want 404", resp.StatusCode)
	}
	return nil
}

// waitReady polls url (with key in keyHeader when not "") until it answers
// 200 with a body of size bytes, p exits, or 10 s pass.
func waitReady(ctx context.Context, client *http.Client, p *proc, url, key string, size int) error {
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return p.failure()
		}
		if last = checkOnce(ctx, client, url, key, size); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	name := "backend"
	if p != nil {
		name = p.name
	}
	return fmt.Errorf("%s not ready after 10s: %v", name, last)
}

func checkOnce(ctx context.Context, client *http.Client, url, key string, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if key != "" {
		req.Header.Set(keyHeader, key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	case n != int64(size):
		return fmt.Errorf("GET %s: body of %d bytes; want %d", url, n, size)
	}
	return nil
}

// checkClient is the HTTP/1.1 client of the readiness and header checks,
// with tlsConfig for https URLs.
func checkClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConfig}}
}

// freePort returns a loopback TCP port that was free a moment ago, from
// below the ephemeral range (see freeport) so that the connections of the
// targets and the load do not take it before a target binds it.
func freePort() (int, error) {
	l, err := freeport.Listen()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
