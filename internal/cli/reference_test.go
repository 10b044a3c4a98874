package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/allocator"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
	"github.com/switchyard/switchyard/routeserver"
)

// referenceDoc is the page whose flag and metric tables these tests keep
// true.
const referenceDoc = "../../docs/reference.md"

// reference is what docs/reference.md lists: the flags of each switchyard
// subcommand, and the metrics (name -> type) of each component.
type reference struct {
	flags   map[string][]string          // "proxy" -> ["--config", ...]
	metrics map[string]map[string]string // "proxy" -> "switchyard_requests_total" -> "counter"
}

// The headings that open a table the tests read: "### `switchyard proxy`"
// for a subcommand's flags, "### Proxy metrics" and "### Route server
// metrics" for the metrics. Any other heading ends such a section.
var (
	flagHeading   = regexp.MustCompile("^#+ `switchyard ([a-z][a-z0-9-]*)`\\s*$")
	metricHeading = regexp.MustCompile(`^#+ (Proxy|TLS|Route server|Allocator) metrics\s*$`)
	flagInCell    = regexp.MustCompile("`--([a-z0-9][a-z0-9-]*)")
	metricInCell  = regexp.MustCompile("^`([a-zA-Z_:][a-zA-Z0-9_:]*)`$")
)

// parseReference reads the flag and metric tables of a reference page.
// Every row of such a table must name a flag (first cell "`--name ...`",
// possibly more than one) or a metric (first cell "`name`", second its
// type); a row that does not is an error, so that a table the tests
// cannot read is never taken for an empty one.
func parseReference(text string) (*reference, error) {
	ref := &reference{flags: map[string][]string{}, metrics: map[string]map[string]string{}}
	var command, component string
	fence := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		if strings.HasPrefix(line, "#") {
			command, component = "", ""
			if m := flagHeading.FindStringSubmatch(line); m != nil {
				command = m[1]
				if _, dup := ref.flags[command]; dup {
					return nil, fmt.Errorf("line %d: a second flag section for switchyard %s", n, command)
				}
				ref.flags[command] = nil
			} else if m := metricHeading.FindStringSubmatch(line); m != nil {
				component = strings.ToLower(m[1])
				if component == "tls" {
					component = "proxy" // the proxy's metrics with --tls-listen
				}
				if ref.metrics[component] == nil {
					ref.metrics[component] = map[string]string{}
				}
			}
			continue
		}
		if (command == "" && component == "") || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := tableCells(line)
		first := cells[0]
		if first == "flag" || first == "metric" || strings.Trim(first, "-: ") == "" {
			continue // header and separator rows
		}
		switch {
		case command != "":
			names := flagInCell.FindAllStringSubmatch(first, -1)
			if len(names) == 0 {
				return nil, fmt.Errorf("line %d: row of switchyard %s without a `--flag` in its first cell: %s", n, command, line)
			}
			for _, m := range names {
				ref.flags[command] = append(ref.flags[command], "--"+m[1])
			}
		default:
			m := metricInCell.FindStringSubmatch(first)
			if m == nil || len(cells) < 2 {
				return nil, fmt.Errorf("line %d: row of the %s metrics without a `metric_name` and a type: %s", n, component, line)
			}
			if _, dup := ref.metrics[component][m[1]]; dup {
				return nil, fmt.Errorf("line %d: %s listed twice", n, m[1])
			}
			ref.metrics[component][m[1]] = cells[1]
		}
	}
	return ref, sc.Err()
}

// tableCells splits a Markdown table row into its trimmed cells; "\|"
// inside a cell is not a separator.
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func readReference(t *testing.T) *reference {
	t.Helper()
	b, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := parseReference(string(b))
	if err != nil {
		t.Fatalf("%s: %v", referenceDoc, err)
	}
	return ref
}

// usageFlag is a flag line of a subcommand's help: "  --name ARG".
var usageFlag = regexp.MustCompile(`(?m)^[ \t]+--([a-z0-9][a-z0-9-]*)\b`)

// registeredFlags returns the flags of every switchyard subcommand: those
// its help lists, each confirmed by the subcommand's own parser (given as
// "--name=" before "-h", a registered flag stops the run with its value's
// error or with the help; an unregistered one is an unknown flag).
func registeredFlags(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range commands {
		var help bytes.Buffer
		c.usage(&help)
		var names []string
		for _, m := range usageFlag.FindAllStringSubmatch(help.String(), -1) {
			name := "--" + m[1]
			if slices.Contains(names, name) {
				continue
			}
			err := c.run([]string{name + "=", "-h"}, io.Discard, io.Discard)
			if err != nil && strings.Contains(err.Error(), "unknown flag") {
				t.Errorf("switchyard %s help lists %s, which the subcommand does not accept: %v", c.name, name, err)
				continue
			}
			names = append(names, name)
		}
		out[c.name] = names
	}
	// A change to the help's layout must not make every flag vanish
	// unnoticed.
	if len(out["proxy"]) < 20 || len(out["route-server"]) < 5 {
		t.Fatalf("found %d proxy flags and %d route-server flags in the help; the help's layout changed (see usageFlag)",
			len(out["proxy"]), len(out["route-server"]))
	}
	return out
}

// TestReferenceFlags fails when a flag of a switchyard subcommand is
// missing from docs/reference.md, or listed there but no longer accepted.
func TestReferenceFlags(t *testing.T) {
	ref := readReference(t)
	code := registeredFlags(t)
	for cmd, names := range code {
		for _, name := range names {
			if !slices.Contains(ref.flags[cmd], name) {
				t.Errorf("switchyard %s %s is not in docs/reference.md: add a row to the table under \"`switchyard %s`\"", cmd, name, cmd)
			}
		}
	}
	for cmd, names := range ref.flags {
		if _, ok := code[cmd]; !ok {
			t.Errorf("docs/reference.md has a flag table for switchyard %s, which is not a subcommand", cmd)
			continue
		}
		seen := map[string]bool{}
		for _, name := range names {
			switch {
			case seen[name]:
				t.Errorf("docs/reference.md lists switchyard %s %s twice", cmd, name)
			case !slices.Contains(code[cmd], name):
				t.Errorf("docs/reference.md lists switchyard %s %s, which the subcommand no longer has", cmd, name)
			}
			seen[name] = true
		}
	}
}

// TestReferenceMetrics fails when a metric that the proxy or the route
// server exports is missing from docs/reference.md, listed there with
// another type, or listed there but no longer exported. The metrics are
// read from each server's /metrics while it runs, after the requests that
// give every labelled metric a series. The Go runtime's and the process's
// (go_*, process_*) are not listed one by one.
func TestReferenceMetrics(t *testing.T) {
	ref := readReference(t)
	for component, got := range map[string]map[string]string{
		"proxy":        proxyMetrics(t),
		"route server": routeServerMetrics(t),
		"allocator":    allocatorMetrics(t),
	} {
		doc := ref.metrics[component]
		if doc == nil {
			t.Errorf("docs/reference.md has no \"%s metrics\" table", strings.ToUpper(component[:1])+component[1:])
		}
		for name, typ := range got {
			switch dt, ok := doc[name]; {
			case !ok:
				t.Errorf("%s metric %s (%s) is not in docs/reference.md", component, name, typ)
			case dt != typ:
				t.Errorf("docs/reference.md lists %s metric %s as a %s; it is a %s", component, name, dt, typ)
			}
		}
		for name := range doc {
			if _, ok := got[name]; !ok {
				t.Errorf("docs/reference.md lists %s metric %s, which the %s does not export", component, name, component)
			}
		}
	}
}

// proxyMetrics runs a proxy the way "switchyard proxy --routes-file" does,
// with --deployment-metrics (its one optional metric), sends it one
// request, and returns what its admin /metrics lists.
func proxyMetrics(t *testing.T) map[string]string {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	const id = "7f3a9c2e51d04b8e"
	routesFile := filepath.Join(t.TempDir(), "routes.yaml")
	routes := fmt.Sprintf(`domain: example.test
deployments:
  - id: %s
    kind: es
    serving: {blue: 100}
    instances:
      - {id: i-0001, addr: %s, zone: zone-a, generation: blue}
`, id, backend.Listener.Addr())
	if err := os.WriteFile(routesFile, []byte(routes), 0o644); err != nil {
		t.Fatal(err)
	}
	// With TLS on, so that the TLS metrics are registered too.
	ca := tlstest.NewCA(t)
	certFile, keyFile := ca.Leaf(t, time.Now().Add(time.Hour), "proxy.example.test").Write(t, t.TempDir(), "default")
	s, err := parseProxyArgs([]string{"--routes-file", routesFile,
		"--tls-listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--deployment-metrics", "--access-log", "off",
		"--drain-delay", "1ms", "--shutdown-timeout", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ listen, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.Ready = func(listen, admin string) { ready <- addrs{listen, admin} }
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("proxy stopped before it listened: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not listening after 10s")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.listen+"/", nil)
	req.Header.Set("X-Found-Cluster", id)
	if status, body := get(t, client, req); status != http.StatusOK {
		t.Fatalf("request through the proxy: %d %s; want 200", status, body)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+a.admin+"/metrics", nil)
	return exposedMetrics(t, client, req)
}

// routeServerMetrics runs a route server that tracks one proxy, sends it
// a report from two (so that the second is counted untracked), and
// returns what its /metrics lists.
func routeServerMetrics(t *testing.T) map[string]string {
	t.Helper()
	rs, err := routeserver.New(routeserver.Config{
		Name: "reference", Listen: "127.0.0.1:0", MaxProxies: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("route server: %v", err)
		}
	}()
	select {
	case <-rs.Ready():
	case err := <-done:
		t.Fatalf("route server stopped before it listened: %v", err)
	}
	base := "http://" + rs.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, proxy := range []string{"proxy-a", "proxy-b"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/report", strings.NewReader(`{"proxy":"`+proxy+`"}`))
		get(t, client, req)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	return exposedMetrics(t, client, req)
}

// allocatorMetrics runs an allocator (whose ZooKeeper does not answer:
// its metrics do not need one) and returns what its admin /metrics lists.
func allocatorMetrics(t *testing.T) map[string]string {
	t.Helper()
	o, err := parseAllocatorArgs([]string{"--zk", testutil.RefusingAddr(t), "--id", "ref", "--zone", "zone-a",
		"--capacity", "1GiB", "--instances-dir", t.TempDir(), "--admin-listen", "127.0.0.1:0", "--cgroups=false"})
	if err != nil {
		t.Fatal(err)
	}
	o.Config.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := allocator.New(o.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("allocator: %v", err)
		}
	}()
	testutil.Eventually(t, 10*time.Second, "allocator admin listener", func() bool { return a.AdminAddr() != "" })
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.AdminAddr()+"/metrics", nil)
	return exposedMetrics(t, client, req)
}

// exposedMetrics fetches a Prometheus text page and returns the type of
// each metric family on it, but the Go runtime's and the process's.
func exposedMetrics(t *testing.T, client *http.Client, req *http.Request) map[string]string {
	t.Helper()
	status, body := get(t, client, req)
	if status != http.StatusOK {
		t.Fatalf("%s: %d; want 200", req.URL, status)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		if strings.HasPrefix(f[2], "go_") || strings.HasPrefix(f[2], "process_") {
			continue
		}
		out[f[2]] = f[3]
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no metric", req.URL)
	}
	return out
}

func get(t *testing.T, client *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestParseReference checks the reader of the reference tables, so that
// a change of the page's layout fails here and not by matching nothing.
func TestParseReference(t *testing.T) {
	const page = "# Reference\n\n" +
		"### `switchyard proxy`\n\n" +
		"```sh\n| `--not-a-row` |\n```\n\n" +
		"| flag | default | meaning |\n| --- | --- | --- |\n" +
		"| `--listen ADDR` | `127.0.0.1:9200` | client listener |\n" +
		"| `--access-log PATH\\|-\\|off` | `-` | access log |\n" +
		"| `--proxy-cpu N`, `--load-cpu N` | | two at once |\n\n" +
		"Some text with `--retire-grace` in it.\n\n" +
		"## Route keys\n\n| `--prose` | not a flag table |\n\n" +
		"### Proxy metrics\n\n| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n" +
		"| `switchyard_requests_total` | counter | `code_class`: `1xx` \\| `2xx` | requests |\n\n" +
		"### Route server metrics\n\n| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n" +
		"| `switchyard_routeserver_stale` | gauge | | stale |\n"
	ref, err := parseReference(page)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ref.flags["proxy"], []string{"--listen", "--access-log", "--proxy-cpu", "--load-cpu"}; !slices.Equal(got, want) {
		t.Errorf("proxy flags = %q; want %q", got, want)
	}
	if len(ref.flags) != 1 {
		t.Errorf("flag sections = %v; want proxy only", ref.flags)
	}
	if got := ref.metrics["proxy"]; len(got) != 1 || got["switchyard_requests_total"] != "counter" {
		t.Errorf("proxy metrics = %v; want switchyard_requests_total counter", got)
	}
	if got := ref.metrics["route server"]; len(got) != 1 || got["switchyard_routeserver_stale"] != "gauge" {
		t.Errorf("route server metrics = %v; want switchyard_routeserver_stale gauge", got)
	}
	for _, bad := range []string{
		"### `switchyard proxy`\n\n| flag | default |\n| --- | --- |\n| listen | x |\n",
		"### Proxy metrics\n\n| metric | type |\n| --- | --- |\n| requests total | counter |\n",
		"### Proxy metrics\n\n| `a_total` | counter |\n| `a_total` | counter |\n",
		"### `switchyard demo`\n\n### `switchyard demo`\n",
	} {
		if _, err := parseReference(bad); err == nil {
			t.Errorf("parseReference(%q): no error", bad)
		}
	}
}
