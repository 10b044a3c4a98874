package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
)

var (
	binary  string // the switchyard binary under test
	yardctl string // the yardctl binary
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(backendEnv); addr != "" {
		serveBackendProcess(addr)
		return
	}
	dir, err := os.MkdirTemp("", "switchyard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "switchyard")
	yardctl = filepath.Join(dir, "yardctl")
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/switchyard", "../../cmd/yardctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building switchyard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running switchyard process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	admin  string
	stderr *testutil.Buffer
	done   chan error
	// cacheDir is a proxy's --cache-dir, when launchProxies set one.
	cacheDir string
}

// startProxy runs `switchyard proxy` with the routes file and extra flags
// and waits until /_health says 200.
func startProxy(t *testing.T, routesFile string, extra ...string) *proc {
	t.Helper()
	return startProxyArgs(t, append([]string{"--routes-file", routesFile}, extra...)...)
}

// startProxyArgs runs `switchyard proxy` with args (plus free listen
// addresses) and waits until /_health says 200.
func startProxyArgs(t *testing.T, extra ...string) *proc {
	t.Helper()
	p := launchProxy(t, extra...)
	p.waitHealthy(t, 30*time.Second)
	return p
}

// launchProxy runs `switchyard proxy` with args (plus free listen
// addresses) and returns at once.
func launchProxy(t *testing.T, extra ...string) *proc {
	t.Helper()
	p := &proc{addr: testutil.FreeAddr(t), admin: testutil.FreeAddr(t), stderr: &testutil.Buffer{}, done: make(chan error, 1)}
	args := append([]string{"proxy", "--listen", p.addr, "--admin-listen", p.admin,
		"--access-log", "off"}, extra...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stderr = p.stderr
	if v := os.Getenv("SWITCHYARD_BENCH_PROXY_GOMEMLIMIT"); v != "" {
		// A soft memory limit for the proxies only (docs/benchmarks.md).
		p.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+v)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// waitHealthy waits until the proxy's /_health says 200. Starting a
// process takes milliseconds, but a loaded machine can stall it for
// seconds.
func (p *proc) waitHealthy(t *testing.T, within time.Duration) {
	t.Helper()
	testutil.EventuallyErr(t, within, "the proxy is healthy", func() error {
		if status, _ := httpGet("http://" + p.addr + "/_health"); status == 200 {
			return nil
		}
		select {
		case err := <-p.done:
			t.Fatalf("proxy exited at start: %v\n%s", err, p.stderr.String())
		default:
		}
		return fmt.Errorf("stderr:\n%s", p.stderr.String())
	})
}

// signal sends sig and returns a channel with the exit error.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for exit and returns the exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("proxy did not exit within %v", within)
		return -1
	}
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS(t *testing.T) int64 { return p.procStatus(t, "VmHWM") }

// rss is the process's resident set size now (VmRSS) in bytes.
func (p *proc) rss(t *testing.T) int64 { return p.procStatus(t, "VmRSS") }

// cpu is the CPU time the process has used, user and system.
func (p *proc) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 12th and 13th, in clock ticks (100 a second).
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", p.cmd.Process.Pid, b)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}

// procStatus is a field of /proc/PID/status given in kB, in bytes.
func (p *proc) procStatus(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(url string, kv ...string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// backend is an instance: a real HTTP server on loopback.
type backend struct {
	addr string
	srv  *http.Server
}

func startBackend(t *testing.T, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), srv: &http.Server{Handler: h}}
	go b.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		b.srv.Shutdown(ctx)
		b.srv.Close()
	})
	return b
}

const depID = "7f3a9c2e51d04b8e9a6c3d2f1e0b4a57"

// writeRoutes writes a routes file with one deployment on the given
// instance addresses.
func writeRoutes(t *testing.T, path string, addrs ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n    aliases: [prod-search]\n    serving: {blue: 100}\n    instances:\n", depID)
	for i, a := range addrs {
		fmt.Fprintf(&b, "      - {id: i-%04d, addr: %q, zone: zone-a, generation: blue}\n", i+1, a)
	}
	writeFileAtomic(t, path, b.String())
}

func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// backendEnv makes the test binary run as an instance process: it serves
// HTTP on the address it names and answers every request with its name
// (backendNameEnv), until killed.
const (
	backendEnv     = "SWITCHYARD_E2E_BACKEND_ADDR"
	backendNameEnv = "SWITCHYARD_E2E_BACKEND_NAME"
	// backendStatusEnv is the status an instance process answers with.
	backendStatusEnv = "SWITCHYARD_E2E_BACKEND_STATUS"
)

// An instance process answers every request with its name, and status
// backendStatusEnv (default 200). Besides:
//
//	/_stats             {"requests": N, "long": L, "open": M}: requests
//	                    served (but these), of them /slow and /stream,
//	                    connections open now (but this one)
//	/slow?ms=N          answers after N ms
//	/stream?ms=N        streams a line every 50 ms for N ms
func serveBackendProcess(addr string) {
	name := os.Getenv(backendNameEnv)
	status := 200
	if s, err := strconv.Atoi(os.Getenv(backendStatusEnv)); err == nil {
		status = s
	}
	var requests, long, open atomic.Int64
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_stats" {
			// This connection is not counted, and closes after.
			w.Header().Set("Connection", "close")
			fmt.Fprintf(w, `{"requests":%d,"long":%d,"open":%d}`, requests.Load(), long.Load(), open.Load()-1)
			return
		}
		requests.Add(1)
		io.Copy(io.Discard, r.Body)
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		if r.URL.Path == "/slow" || r.URL.Path == "/stream" {
			long.Add(1)
		}
		switch r.URL.Path {
		case "/slow":
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case "/stream":
			w.WriteHeader(status)
			for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
				if _, err := io.WriteString(w, name+"\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, name)
	}), ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	err := srv.ListenAndServe()
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// instanceStats is an instance's /_stats.
type instanceStats struct{ Requests, Long, Open int64 }

// stats reads the instance's /_stats.
func (ip *instanceProc) stats(t *testing.T) (requests, open int64) {
	st := ip.allStats(t)
	return st.Requests, st.Open
}

func (ip *instanceProc) allStats(t *testing.T) instanceStats {
	t.Helper()
	_, body := httpGet("http://" + ip.addr + "/_stats")
	var st instanceStats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("instance %s /_stats: %v: %q", ip.name, err, body)
	}
	return st
}

// waitLong waits until the instances have begun n /slow or /stream
// requests in all.
func waitLong(t *testing.T, n int64, insts ...*instanceProc) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("%d slow or streaming requests reach the instances", n), func() bool {
		var sum int64
		for _, in := range insts {
			sum += in.allStats(t).Long
		}
		return sum >= n
	})
}

// instanceProc is an instance running as its own process.
type instanceProc struct {
	name, zone, addr string
	cmd              *exec.Cmd
}

// startInstance runs the test binary as an instance process and waits until
// it answers.
func startInstance(t *testing.T, name, zone string, env ...string) *instanceProc {
	t.Helper()
	ip := &instanceProc{name: name, zone: zone, addr: testutil.FreeAddr(t)}
	ip.cmd = exec.Command(os.Args[0])
	ip.cmd.Env = append(append(os.Environ(), backendEnv+"="+ip.addr, backendNameEnv+"="+name), env...)
	if err := ip.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ip.cmd.Process.Signal(syscall.SIGCONT)
		ip.cmd.Process.Kill()
		ip.cmd.Wait()
	})
	testutil.EventuallyErr(t, 30*time.Second, "instance "+name+" listens", func() error { // see startProxyArgs
		c, err := net.DialTimeout("tcp", ip.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	return ip
}
