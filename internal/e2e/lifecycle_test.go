package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// SIGTERM: /_health turns 502 at once while the listener keeps accepting
// for the drain delay; a slow request running at the time finishes; the
// process exits 0.
func TestSIGTERMDrainsRunningRequests(t *testing.T) {
	// The checks within the drain delay take milliseconds, but a loaded
	// machine can stall them for seconds.
	const drainDelay = 4 * time.Second
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case started <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-time.After(60 * time.Second):
			}
		}
		io.WriteString(w, "finished")
	}))
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeRoutes(t, routes, slow.addr)
	p := startProxy(t, routes, "--drain-delay", drainDelay.String(), "--shutdown-timeout", "10s")

	type result struct {
		status int
		body   string
	}
	res := make(chan result, 1)
	go func() {
		// Its own client: httpGet's 5 s timeout is shorter than the drain.
		req, _ := http.NewRequest("GET", "http://"+p.addr+"/slow", nil)
		req.Header.Set("X-Found-Cluster", depID)
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b)}
	}()
	select { // the slow request is in flight
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the instance in 10s")
	}
	term := time.Now()
	p.signal(t, syscall.SIGTERM)

	// Within the drain delay: health says 502, new requests still served.
	var status int
	var body string
	testutil.Eventually(t, drainDelay, "/_health says 502", func() bool {
		status, body = httpGet("http://" + p.addr + "/_health")
		return status == 502
	})
	if body != `{"ok":false,"status":502}` {
		t.Errorf("/_health while draining: %d %s; want 502", status, body)
	}
	if status, body := httpGet("http://"+p.addr+"/fast", "X-Found-Cluster", depID); status != 200 || body != "finished" {
		t.Errorf("new request during the drain delay: %d %s; want 200", status, body)
	}
	// After the drain delay the listener is closed, the slow request still runs.
	testutil.Eventually(t, 10*time.Second, "the listener closes", func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if took := time.Since(term); took < drainDelay {
		t.Errorf("listener closed %v after SIGTERM; want after the %v drain delay", took, drainDelay)
	}
	select {
	case r := <-res:
		t.Fatalf("slow request ended before it was released: %d %s", r.status, r.body)
	default:
	}
	close(release)
	if r := <-res; r.status != 200 || r.body != "finished" {
		t.Errorf("slow request across the drain: %d %q; want 200 finished", r.status, r.body)
	}
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM; want 0", code)
	}
}

// A routes file that fails validation — changed on disk, or with SIGHUP — is
// rejected whole: the old table keeps serving, the rejection is counted;
// the next good file is applied.
func TestBadRoutesReloadKeepsServing(t *testing.T) {
	one := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "one") }))
	two := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "two") }))
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeRoutes(t, routes, one.addr)
	p := startProxy(t, routes, "--drain-delay", "100ms")

	serves := func(want string) {
		t.Helper()
		if status, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", "prod-search.es"); status != 200 || body != want {
			t.Errorf("got %d %q; want 200 %q", status, body, want)
		}
	}
	rejected := func() string {
		_, m := httpGet("http://" + p.admin + "/metrics")
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, `switchyard_route_table_loads_total{result="rejected"}`) {
				return strings.Fields(line)[1]
			}
		}
		return "0"
	}
	serves("one")

	// A broken file on disk: an instance address that is not host:port.
	bad := strings.Replace(mustRead(t, routes), one.addr, "not-an-address", 1)
	writeFileAtomic(t, routes, bad)
	testutil.Eventually(t, 15*time.Second, "the bad file is rejected", func() bool { return rejected() == "1" })
	serves("one")
	logSays(t, p.stderr, "not-an-address", "a log line names the problem")

	// SIGHUP forces a reload of the same bad file: rejected again.
	p.signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 15*time.Second, "the SIGHUP reload is rejected", func() bool { return rejected() == "2" })
	serves("one")

	// An empty deployment list is an error, never a wipe.
	writeFileAtomic(t, routes, "domain: example.test\ndeployments: []\n")
	testutil.Eventually(t, 15*time.Second, "the empty file is rejected", func() bool { return rejected() == "3" })
	serves("one")

	// A good file is applied.
	writeRoutes(t, routes, two.addr)
	testutil.Eventually(t, 15*time.Second, "the good file is applied", func() bool {
		_, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", "prod-search.es")
		return body == "two"
	})
	_, status := httpGet("http://" + p.admin + "/status")
	if !strings.Contains(status, `"last_rejected"`) {
		t.Errorf("/status does not show the last rejection:\n%s", status)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d; want 0", code)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Rotation: the access log file is renamed, SIGUSR1 makes the proxy
// create a new one at the configured path; lines before the signal are in
// the renamed file, lines after it in the new one, none lost. With the
// path unwritable the proxy keeps writing to the file it has.
func TestSIGUSR1ReopensAccessLog(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	writeRoutes(t, routes, be.addr)
	logPath := filepath.Join(dir, "logs", "access.log")
	if err := os.Mkdir(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, routes, "--access-log", logPath, "--drain-delay", "100ms")

	get := func(path string) {
		t.Helper()
		if status, body := httpGet("http://"+p.addr+path, "X-Found-Cluster", depID); status != 200 || body != "ok" {
			t.Fatalf("GET %s: %d %q; want 200 ok", path, status, body)
		}
	}
	// holds reports whether file holds a line for each path.
	holds := func(file string, paths ...string) bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		for _, path := range paths {
			if !strings.Contains(string(b), path) {
				return false
			}
		}
		return true
	}
	get("/before-rotation")
	testutil.Eventually(t, 10*time.Second, "the first line in the log", func() bool { return holds(logPath, "/before-rotation") })

	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	get("/between-rename-and-signal")
	p.signal(t, syscall.SIGUSR1)
	testutil.Eventually(t, 10*time.Second, "a new file at the path", func() bool {
		_, err := os.Stat(logPath)
		return err == nil
	})
	get("/after-reopen")
	testutil.Eventually(t, 10*time.Second, "the line after the reopen in the new file", func() bool { return holds(logPath, "/after-reopen") })
	if !holds(rotated, "/before-rotation", "/between-rename-and-signal") {
		t.Errorf("renamed file lacks the lines written before the signal:\n%s", mustRead(t, rotated))
	}
	if holds(rotated, "/after-reopen") || holds(logPath, "/before-rotation") || holds(logPath, "/between-rename-and-signal") {
		t.Errorf("a line went to the wrong file:\nold:\n%s\nnew:\n%s", mustRead(t, rotated), mustRead(t, logPath))
	}
	logSays(t, p.stderr, "access log reopened", "a log line reports the reopen")

	// The directory goes away: the reopen fails, is logged, and lines
	// keep going to the open file.
	moved := filepath.Join(dir, "logs-moved")
	if err := os.Rename(filepath.Dir(logPath), moved); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGUSR1)
	testutil.Eventually(t, 10*time.Second, "the failed reopen to be logged", func() bool {
		return strings.Contains(p.stderr.String(), "access log not reopened")
	})
	get("/after-failed-reopen")
	testutil.Eventually(t, 10*time.Second, "the line in the file still open", func() bool {
		return holds(filepath.Join(moved, "access.log"), "/after-reopen", "/after-failed-reopen")
	})

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM; want 0", code)
	}
}
