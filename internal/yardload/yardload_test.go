package yardload_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/yardload"
	"github.com/switchyard/switchyard/loadtest"
)

func TestMainBadUsageIsOneLineAndExit2(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	empty := filepath.Join(dir, "empty")
	spaced := filepath.Join(dir, "spaced")
	os.WriteFile(keys, []byte("a\nb\n"), 0o644)
	os.WriteFile(empty, []byte("# only a comment\n\n"), 0o644)
	os.WriteFile(spaced, []byte("a\nb c\n"), 0o644)
	u := "http://127.0.0.1:1/"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "yardload: --url is required"},
		{[]string{"--url", u, "--rate", "x"}, `yardload: --rate: invalid number "x"`},
		{[]string{"--url", u, "--rate", "-5"}, `yardload: --rate: "-5" is not a positive rate`},
		{[]string{"--url", u, "--connections", "0"}, `yardload: --connections: invalid count "0" (want >= 1)`},
		{[]string{"--url", u, "--requests", "many"}, `yardload: --requests: invalid count "many" (want >= 1)`},
		{[]string{"--url", u, "--duration", "5"}, `yardload: --duration: invalid duration "5" (want e.g. 30s)`},
		{[]string{"--url", u, "--timeout", "-1s"}, `yardload: --timeout: invalid duration "-1s" (want e.g. 30s)`},
		{[]string{"--url", u, "--body-size", "1k"}, `yardload: --body-size: invalid size "1k" (want bytes, >= 0)`},
		{[]string{"--url", u, "--header", "X-Found-Cluster"}, `yardload: --header: want K:V, got "X-Found-Cluster"`},
		{[]string{"--url", u, "-o", "xml"}, `yardload: -o: invalid output "xml" (want json or table)`},
		{[]string{"--url", u, "--bogus"}, "yardload: unknown flag --bogus"},
		{[]string{"--url"}, "yardload: --url: missing value"},
		{[]string{"--url", u, "extra"}, `yardload: unexpected argument "extra"`},
		{[]string{"--url", "ftp://x/"}, `yardload: --url: scheme of "ftp://x/" is not http or https`},
		{[]string{"--url", u, "--method", "GE T"}, `yardload: --method: invalid method "GE T"`},
		{[]string{"--url", u, "--keys-file", filepath.Join(dir, "missing")}, "yardload: --keys-file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{[]string{"--url", u, "--keys-file", empty}, "yardload: --keys-file: " + empty + ": no keys"},
		{[]string{"--url", u, "--keys-file", spaced}, "yardload: --keys-file: " + spaced + `:2: key "b c" has a space`},
		{[]string{"--url", u, "--host-template", "{key}.example.test"}, "yardload: --host-template: needs --keys-file"},
		{[]string{"--url", u, "--keys-file", keys, "--host-template", "example.test"}, `yardload: --host-template: "example.test" has no {key}`},
		{[]string{"--url", u, "--http2", "--http3"}, "yardload: --http3: give --http2 or --http3, not both"},
		{[]string{"--url", u, "--http2=maybe"}, `yardload: --http2: invalid boolean "maybe"`},
		{[]string{"--url", u, "--http2"}, "yardload: --http2/--http3: h2 needs an https URL"},
		{[]string{"--url", u, "--http3"}, "yardload: --http2/--http3: h3 needs an https URL"},
		{[]string{"--url", u, "--streams", "4"}, "yardload: --streams: needs --http2 or --http3"},
		{[]string{"--url", u, "--http2", "--streams", "0"}, `yardload: --streams: invalid count "0" (want >= 1)`},
		{[]string{"--url", u, "--ca", filepath.Join(dir, "missing")}, "yardload: --ca: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{[]string{"--url", u, "--ca", keys}, "yardload: --ca: " + keys + ": no PEM certificate in it"},
		{[]string{"--url", u, "--ca", keys, "--insecure"}, "yardload: --insecure: give --ca or --insecure, not both"},
	} {
		var stdout, stderr bytes.Buffer
		code := yardload.Main(tc.args, &stdout, &stderr)
		if code != 2 || stderr.String() != tc.want+"\n" || stdout.Len() != 0 {
			t.Errorf("yardload %q: got exit %d, stderr %q, stdout %q; want exit 2, stderr %q",
				tc.args, code, stderr.String(), stdout.String(), tc.want+"\n")
		}
	}
}

func TestMainHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := yardload.Main([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "usage: yardload --url URL") {
		t.Errorf("--help: got exit %d, stdout %q; want 0 and the usage", code, stdout.String())
	}
}

func TestMainJSONOutputIsOneDocument(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Found-Cluster") != "k1" || r.ContentLength != 100 {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	var stdout, stderr bytes.Buffer
	code := yardload.Main([]string{"--url", url, "--requests", "20", "--connections", "2", "--method", "POST",
		"--header", "X-Found-Cluster: k1", "--body-size", "100", "-o", "json"}, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("got exit %d, stderr %q; want 0, nothing", code, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	var r loadtest.Report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding the output: %v", err)
	}
	if err := dec.Decode(new(any)); err != io.EOF {
		t.Errorf("after the report: got %v; want EOF", err)
	}
	if r.Completed != 20 || r.Status[200] != 20 || r.Mode != "closed" || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P999 {
		t.Errorf("got %+v; want 20 completed 200s, closed loop, latencies in order", r)
	}
}

func TestMainTableOutputAndKeysFile(t *testing.T) {
	var rec recorder
	url := rec.serve(t, func(r *http.Request) string { return r.Host })
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("# deployments\nalpha\n\n  beta  \n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := yardload.Main([]string{"--url", url, "--rate", "500", "--requests", "50", "--connections", "2",
		"--keys-file", keys, "--host-template", "{key}.example.test"}, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("got exit %d, stderr %q; want 0, nothing", code, stderr.String())
	}
	for _, want := range []string{"open loop at 500 req/s, 2 connections", "50 sent, 50 completed, 0 failed", "status", "200: 50", "p99.9", "late"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if got := rec.values(); strings.Join(got, ",") != "alpha.example.test,beta.example.test" {
		t.Errorf("server saw hosts %q; want alpha and beta .example.test", got)
	}
}

// Exit 1 is for a run that cannot start; requests that fail are reported.
func TestMainExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := yardload.Main([]string{"--url", "http://nosuch.invalid/", "--requests", "3"}, &stdout, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), "yardload: lookup nosuch.invalid") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("unknown host: got exit %d, stderr %q; want 1 and one line", code, stderr.String())
	}
	stdout.Reset()
	if code := yardload.Main([]string{"--url", closedPort(t), "--requests", "3"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "refused: 3") {
		t.Errorf("refused: got exit %d, stdout %q; want 0 and the refusals counted", code, stdout.String())
	}
}

// serve starts an HTTP server over loopback and returns its URL.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// closedPort returns an http URL on a loopback port that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/"
}

// recorder is a server that records one string per request.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (rec *recorder) serve(t *testing.T, value func(*http.Request) string) string {
	rec.seen = map[string]int{}
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[value(r)]++
		rec.mu.Unlock()
	})
}

func (rec *recorder) values() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Sorted(maps.Keys(rec.seen))
}
