package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/demo"
	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// TestQuickStart is the quick start as a new user runs it: build the binary,
// run "switchyard demo", run the curl lines it prints, stop it with Ctrl-C.
// It takes a few seconds of wall time (building, draining).
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the demo")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "switchyard")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/switchyard")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Port 0: the banner says where the proxy listens, as it does for a
	// user, and no port picked beforehand can be taken meanwhile.
	cmd := exec.CommandContext(ctx, bin, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // access log lines nobody reads
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })

	// The banner is printed once the proxy listens; it starts with the
	// proxy's and the admin listener's addresses and ends with "Ctrl-C".
	var curls []string
	var listen, admin string
	deadline := time.After(30 * time.Second)
	for banner := true; banner; {
		select {
		case line := <-lines:
			trimmed := strings.TrimSpace(line)
			if n, _ := fmt.Sscanf(trimmed, "Switchyard demo: proxy on http://%s admin on http://%s", &listen, &admin); n > 0 {
				listen = strings.TrimSuffix(listen, ",")
			}
			if strings.HasPrefix(trimmed, "curl ") {
				curls = append(curls, trimmed)
			}
			banner = !strings.HasPrefix(trimmed, "Ctrl-C")
		case err := <-exited:
			t.Fatalf("demo exited before printing its banner: %v\nstderr:\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("no banner within 30s\nstderr:\n%s", stderr.String())
		}
	}
	if listen == "" || admin == "" {
		t.Fatalf("banner did not name the proxy and admin addresses (proxy %q, admin %q)", listen, admin)
	}
	if len(curls) < 6 {
		t.Fatalf("banner printed %d curl lines; want the header, host, alias, echo and admin forms", len(curls))
	}

	keys := map[string]string{} // route key -> deployment ID
	for _, d := range demo.Layout() {
		keys[d.ID] = d.ID
		keys[d.Alias+"."+d.Kind] = d.ID
	}
	seenZones := map[string]bool{}
	for _, line := range curls {
		req, err := parseCurl(ctx, line)
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		if req.URL.Host == admin {
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Errorf("%s: status %d, %d bytes; want 200 with a body", line, resp.StatusCode, len(body))
			}
			continue
		}
		if req.URL.Host != listen {
			t.Errorf("%s: goes to %s; want the proxy (%s) or the admin listener (%s)", line, req.URL.Host, listen, admin)
			continue
		}
		key := strings.TrimSuffix(req.Host, "."+demo.Domain)
		if h := req.Header.Get("X-Found-Cluster"); h != "" {
			key = h
		}
		wantID, ok := keys[key]
		if !ok {
			t.Errorf("%s: route key %q is not a demo deployment", line, key)
			continue
		}
		for range 8 { // a few times, to see more than one instance
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: status %d %s; want 200", line, resp.StatusCode, body)
				break
			}
			if got := resp.Header.Get("X-Found-Handling-Cluster"); got != wantID {
				t.Errorf("%s: X-Found-Handling-Cluster %q; want %q", line, got, wantID)
			}
			if req.Method == http.MethodPost {
				sent, _ := req.GetBody()
				want, _ := io.ReadAll(sent)
				if !bytes.Equal(body, want) || resp.Header.Get("X-Demo-Deployment") != wantID {
					t.Errorf("%s: got %q from %q; want the body echoed by %s", line, body, resp.Header.Get("X-Demo-Deployment"), wantID)
				}
				continue
			}
			var rep demo.Reply
			if err := json.Unmarshal(body, &rep); err != nil || rep.Deployment != wantID {
				t.Errorf("%s: got %s (%v); want a reply from deployment %s", line, body, err, wantID)
			}
			if rep.Deployment == keys["prod-search.es"] {
				seenZones[rep.Zone] = true
			}
			if rep.Headers["x-forwarded-for"] == "" {
				t.Errorf("%s: instance saw headers %v; want X-Forwarded-For", line, rep.Headers)
			}
		}
	}
	if len(seenZones) < 2 {
		t.Errorf("prod-search answered from zones %v; want both zones", seenZones)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo after SIGINT: %v; want exit 0\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("demo still running 10s after SIGINT\nstderr:\n%s", stderr.String())
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if req.GetBody != nil {
		req.Body, _ = req.GetBody()
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// parseCurl turns a printed curl line into a request. It accepts only what
// a shell would run unchanged: words and single-quoted strings, and the
// curl options -s, -H, -d and -X.
func parseCurl(ctx context.Context, line string) (*http.Request, error) {
	words, err := shellWords(line)
	if err != nil {
		return nil, err
	}
	if len(words) < 2 || words[0] != "curl" {
		return nil, errors.New("not a curl command")
	}
	method, url := "", ""
	var headers [][2]string
	var data *string
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("%s without a value", w)
			}
			i++
			return words[i], nil
		}
		switch {
		case w == "-s":
		case w == "-H" || w == "-d" || w == "-X":
			v, err := next()
			if err != nil {
				return nil, err
			}
			switch w {
			case "-H":
				k, val, ok := strings.Cut(v, ":")
				if !ok {
					return nil, fmt.Errorf("header %q without a colon", v)
				}
				headers = append(headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
			case "-d":
				data = &v
			case "-X":
				method = v
			}
		case strings.HasPrefix(w, "-"):
			return nil, fmt.Errorf("curl option %s: not understood by this test", w)
		case url != "":
			return nil, fmt.Errorf("two URLs: %s, %s", url, w)
		default:
			url = w
		}
	}
	var body io.Reader
	if data != nil {
		body = strings.NewReader(*data)
		if method == "" {
			method = http.MethodPost
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // curl's default for -d
	}
	for _, h := range headers {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
			continue
		}
		req.Header.Set(h[0], h[1])
	}
	return req, nil
}

// shellWords splits a line as a POSIX shell would, allowing only plain
// words and single quotes: anything else would make the printed line
// shell-dependent.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"\\$`!*?[]{}()<>|&;#~", r):
			return nil, fmt.Errorf("unquoted %q: the line would depend on the shell", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
