package conformance

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRequestPath sends arbitrary bytes to a Switchyard listener, with a
// strict instance behind it, and checks what came out on both sides:
//
//   - every byte the instance received belongs to exactly one well-framed
//     request (a request cut short by a closed connection is allowed: the
//     client's input may end inside a body), whose target is in origin
//     form (RFC 9112 3.2.1; "*" for OPTIONS);
//   - the instance answered as many requests as the client got proxied
//     responses (carrying X-Found-Handling-Instance), and each of those is
//     the answer to the request that carried its X-Cloud-Request-Id;
//   - every response the proxy wrote itself is a 4xx with a JSON body, or
//     its health check, or 100 Continue; the client got nothing that is
//     not an HTTP/1 response;
//   - the proxy closes the connection within 15s of the client's
//     half-close.
//
// One proxy and instance serve every input of a process, so what one
// input leaves behind on a pooled instance connection meets the next.
// Inputs holding "HEAD" are skipped: the client cannot tell which
// responses answer a HEAD and so have no body.
func FuzzRequestPath(f *testing.F) {
	inst, err := Listen(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { inst.Close() })
	srv, err := startSwitchyard(inst.Addr())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := srv.stop(); err != nil {
			f.Error(err)
		}
	})
	known := map[string]string{}
	for _, sh := range shapes {
		if slices.Contains(knownFailing, sh.name) {
			known[sh.raw] = sh.name
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 16<<10 || bytes.Contains(raw, []byte("HEAD")) {
			t.Skip()
		}
		inst.Reset()
		ex, err := Send(srv.addr, raw, SendOptions{HalfClose: true, FirstWait: 15 * time.Second, NextWait: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		inst.Quiet(5*time.Millisecond, time.Second)
		problems := pathProblems(ex, inst.Snapshot())
		name, isKnown := known[string(raw)]
		for _, p := range problems {
			if isKnown {
				t.Logf("known failing (knownFailing: %s): %s", name, p)
			} else {
				t.Error(p)
			}
		}
	})
}

// pathProblems checks one exchange of FuzzRequestPath against what the
// instance received meanwhile.
func pathProblems(ex *Exchange, rec *Record) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	for _, f := range rec.Malformed() {
		add("instance got bytes that are no well-framed request: %v", f)
	}
	switch ex.End {
	case EndGarbage:
		add("client got bytes that are not HTTP/1 responses: %v: %q", ex.Err, ex.Raw)
	case EndOpen:
		add("proxy left the connection open 15s after the client's half-close (client got %s)", ex.Summary())
	}
	for _, q := range rec.Requests {
		if !strings.HasPrefix(q.Target, "/") && !(q.Method == "OPTIONS" && q.Target == "*") {
			add("instance got request %d with target %q; want origin form", q.Seq, q.Target)
		}
	}
	proxied := 0
	for _, resp := range ex.Responses {
		if resp.Header.Get("X-Found-Handling-Instance") == "" {
			if why := ownProblem(&resp); why != "" {
				add("proxy's own %d: %s", resp.Status, why)
			}
			continue
		}
		proxied++
		q := rec.Request(seqOf(&resp))
		if q == nil {
			add("proxied answer with %s %q answers no request the instance parsed for this client", HeaderSeq, resp.Header.Get(HeaderSeq))
			continue
		}
		if id := resp.Header.Get("X-Cloud-Request-Id"); !slices.Contains(q.Values("X-Cloud-Request-Id"), id) {
			add("client got the answer to request %d (X-Cloud-Request-Id %q) under X-Cloud-Request-Id %q", q.Seq, q.Values("X-Cloud-Request-Id"), id)
		}
	}
	if n := len(rec.Requests); n != proxied {
		add("instance answered %d requests; client got %d proxied responses (%s)", n, proxied, ex.Summary())
	}
	if len(p) > 0 {
		add("instance got:\n%s", rec.Transcript())
	}
	return p
}

// ownProblem says what is wrong with a response the proxy wrote itself.
func ownProblem(resp *Response) string {
	switch {
	case resp.Status == 100:
		return ""
	case resp.Status == 200 && string(resp.Body) == `{"ok":true,"status":200}`:
		return "" // /_health
	case resp.Status < 400:
		return fmt.Sprintf("a %d of its own that is not the health check: %q", resp.Status, resp.Body)
	}
	return ownRefusalProblem(resp)
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzRequestPath from the shapes table")

// TestFuzzSeeds checks that FuzzRequestPath's seed corpus holds every
// shape of the table, each in a file named after it; with -update-seeds
// it writes them.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRequestPath")
	if *updateSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	for _, sh := range shapes {
		name := seedName(sh.name)
		if other, dup := seen[name]; dup {
			t.Errorf("shapes %q and %q have the same seed file %s", other, sh.name, name)
		}
		seen[name] = sh.name
		path := filepath.Join(dir, name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(sh.raw) + ")\n"
		if *updateSeeds {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s does not hold shape %q (run go test -run TestFuzzSeeds -update-seeds)", path, sh.name)
		}
	}
}

// seedName turns a shape's name into a file name: lowercase letters and
// digits, other runs of bytes as one "-".
func seedName(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
