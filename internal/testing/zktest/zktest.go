// Package zktest starts real ZooKeeper servers for tests: one node or an
// ensemble of 3 or 5, each a java process with its own zoo.cfg and data
// directory under the test's temporary directory, and lets a test kill,
// stop, restart, pause and resume them, cut a client off with a proxy
// (Proxy), and expire a client's session (ExpireSession).
//
// The servers come from Debian's zookeeper package
// (/usr/share/java/zookeeper.jar, /etc/zookeeper/conf), which
// scripts/install-test-deps.sh installs. When java or the jar is missing,
// the test fails, unless SWITCHYARD_ALLOW_SKIP_ZK=1 is set: then it is
// skipped. CI must not skip silently.
//
// Servers tick every 200ms, so sessions may be as short as 400ms (2 ticks)
// and at most 4s (20 ticks). Each server logs to zk-N.log in its directory;
// the logs are printed when the test fails. Every server is killed when
// the test ends.
package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/freeport"
)

// Where Debian's zookeeper package puts the server.
const (
	JarPath = "/usr/share/java/zookeeper.jar"
	ConfDir = "/etc/zookeeper/conf"
	// slf4jSimple makes the server log (without a binding it logs nothing).
	slf4jSimple = "/usr/share/java/slf4j-simple.jar"
)

// TickTime is the servers' tick. A session timeout must be 2 to 20 ticks.
const TickTime = 200 * time.Millisecond

// AllowSkipEnv, set to 1, turns a missing java or ZooKeeper into a skip.
const AllowSkipEnv = "SWITCHYARD_ALLOW_SKIP_ZK"

// HeapEnv sets the servers' Java heap, for the benchmarks that hold a
// large table: "2g", for instance. Unset, a server starts as fast as it
// can for tests: -Xmx128m, the serial collector and the first JIT tier
// only. Set, it runs as ZooKeeper runs in production, so that the
// figures are a production server's: the full JIT, the G1 collector, and
// a fixed heap of that size (-Xms equal to -Xmx). See jvmFlags.
const HeapEnv = "SWITCHYARD_ZK_HEAP"

// Bounds of the waits the harness does itself.
const (
	serveTimeout = 30 * time.Second // a server (ensemble: a quorum) answers
	stopTimeout  = 10 * time.Second // a SIGTERM'd server exits
)

// Ensemble is a set of running ZooKeeper servers: one (Start) or a quorum
// ensemble (StartEnsemble). Nodes are numbered from 0 in its methods (the
// server.N ids in zoo.cfg are i+1). Its methods may be called from several
// goroutines.
type Ensemble struct {
	t     testing.TB
	java  string
	nodes []*node
}

type node struct {
	id                                 int // myid, 1-based
	dir                                string
	cfg                                string
	log                                string
	clientPort, peerPort, electionPort int

	mu     sync.Mutex
	proc   *os.Process   // nil when not running
	exited chan struct{} // closed when proc exits
	paused bool
}

// Start starts one standalone ZooKeeper server and waits until it serves.
func Start(t testing.TB) *Ensemble {
	t.Helper()
	return start(t, 1)
}

// StartEnsemble starts a quorum of n servers (3 or 5) and waits until
// every one serves.
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	if n < 3 || n%2 == 0 {
		t.Fatalf("zktest: an ensemble has an odd number of servers, at least 3; got %d", n)
	}
	return start(t, n)
}

func start(t testing.TB, n int) *Ensemble {
	t.Helper()
	java := requireServer(t)
	// A port picked free may be taken before java binds it: try again
	// with new ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e := &Ensemble{t: t, java: java}
		if err := e.configure(t.TempDir(), n); err != nil {
			t.Fatalf("zktest: %v", err)
		}
		t.Cleanup(e.cleanup)
		for i := range e.nodes {
			if err := e.start(i); err != nil {
				t.Fatalf("zktest: %v", err)
			}
		}
		lastErr = nil
		for i := range e.nodes {
			if lastErr = e.waitServing(i, serveTimeout); lastErr != nil {
				break
			}
		}
		if lastErr == nil {
			return e
		}
		if !e.portInUse() {
			break
		}
		e.cleanup()
	}
	t.Fatalf("zktest: %v", lastErr)
	return nil
}

// requireServer returns the java binary, or ends the test when java or
// the ZooKeeper jar is missing: skipped if AllowSkipEnv is 1, failed
// otherwise.
func requireServer(t testing.TB) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err == nil {
		_, err = os.Stat(JarPath)
	}
	if err == nil {
		return java
	}
	msg := fmt.Sprintf("zktest: ZooKeeper is not installed (%v); run scripts/install-test-deps.sh (Debian: apt-get install zookeeper default-jre-headless)", err)
	if os.Getenv(AllowSkipEnv) == "1" {
		t.Skip(msg + "; skipped because " + AllowSkipEnv + "=1")
	}
	t.Fatal(msg + ", or set " + AllowSkipEnv + "=1 to skip the tests that need it")
	return ""
}

// configure picks ports and writes each node's zoo.cfg and myid.
func (e *Ensemble) configure(dir string, n int) error {
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	var servers strings.Builder
	for i := 0; i < n; i++ {
		nd := &node{
			id:           i + 1,
			dir:          filepath.Join(dir, fmt.Sprintf("zk-%d", i+1)),
			clientPort:   ports[3*i],
			peerPort:     ports[3*i+1],
			electionPort: ports[3*i+2],
		}
		nd.cfg = filepath.Join(nd.dir, "zoo.cfg")
		nd.log = filepath.Join(nd.dir, fmt.Sprintf("zk-%d.log", nd.id))
		e.nodes = append(e.nodes, nd)
		if n > 1 {
			fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d\n", nd.id, nd.peerPort, nd.electionPort)
		}
	}
	for _, nd := range e.nodes {
		data := filepath.Join(nd.dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		cfg := fmt.Sprintf(`# written by internal/testing/zktest
tickTime=%d
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=no
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
reconfigEnabled=false
standaloneEnabled=true
%s`, TickTime.Milliseconds(), data, nd.clientPort, servers.String())
		if err := os.WriteFile(nd.cfg, []byte(cfg), 0o644); err != nil {
			return err
		}
		if n > 1 {
			if err := os.WriteFile(filepath.Join(data, "myid"), fmt.Appendf(nil, "%d\n", nd.id), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := freeport.Listen()
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Servers returns the client addresses (host:port) of every node, running
// or not.
func (e *Ensemble) Servers() []string {
	out := make([]string, len(e.nodes))
	for i := range e.nodes {
		out[i] = e.Server(i)
	}
	return out
}

// Server returns the client address (host:port) of node i.
func (e *Ensemble) Server(i int) string {
	return fmt.Sprintf("127.0.0.1:%d", e.node(i).clientPort)
}

// Len is the number of nodes.
func (e *Ensemble) Len() int { return len(e.nodes) }

func (e *Ensemble) node(i int) *node {
	if i < 0 || i >= len(e.nodes) {
		e.t.Fatalf("zktest: no node %d (the ensemble has %d)", i, len(e.nodes))
	}
	return e.nodes[i]
}

// Start restarts node i (after Kill or Stop) over its data directory. It
// does not wait: call WaitServing (a node of an ensemble serves only once
// it is part of a quorum).
func (e *Ensemble) Start(i int) {
	e.t.Helper()
	if err := e.start(i); err != nil {
		e.t.Fatalf("zktest: %v", err)
	}
}

// jvmFlags returns the servers' heap, collector and JIT options for heap,
// the value of HeapEnv. Empty (tests): a small heap, the serial
// collector and the first JIT tier, which start fastest. Set
// (benchmarks): what a production server runs with, a fixed heap, G1
// (named, not left to the JVM's choice by machine size) and the full JIT.
func jvmFlags(heap string) []string {
	if heap == "" {
		return []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}
	}
	return []string{"-Xms" + heap, "-Xmx" + heap, "-XX:+UseG1GC"}
}

func (e *Ensemble) start(i int) error {
	nd := e.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc != nil {
		return fmt.Errorf("node %d is already running", i)
	}
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== zktest: starting node %d at %s\n", i, time.Now().Format(time.RFC3339Nano))
	cp := ConfDir + ":" + JarPath
	if _, err := os.Stat(slf4jSimple); err == nil {
		cp += ":" + slf4jSimple
	}
	args := append(jvmFlags(os.Getenv(HeapEnv)), "-Xshare:auto",
		"-Djava.net.preferIPv4Stack=true",
		"-Dzookeeper.cnxTimeout=500", // quick reconnects between peers
		"-Dzookeeper.admin.enableServer=false",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-cp", cp,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", nd.cfg)
	cmd := exec.Command(e.java, args...)
	cmd.Dir = nd.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()

	// The process is started and waited for on one locked OS thread:
	// with Pdeathsig (Linux) the server dies with that thread, so with the
	// test binary even when it crashes, and not before.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer close(exited)
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting node %d: %w", i, err)
	}
	nd.proc, nd.exited, nd.paused = cmd.Process, exited, false
	go func(p *os.Process) {
		<-exited
		nd.mu.Lock()
		if nd.proc == p {
			nd.proc = nil
		}
		nd.mu.Unlock()
	}(cmd.Process)
	return nil
}

// Kill sends SIGKILL to node i and waits until it is gone.
func (e *Ensemble) Kill(i int) {
	e.t.Helper()
	if err := e.node(i).signalWait(syscall.SIGKILL, stopTimeout); err != nil {
		e.t.Fatalf("zktest: node %d: %v", i, err)
	}
}

// Stop sends SIGTERM to node i and waits until it exits (SIGKILL after 10s).
func (e *Ensemble) Stop(i int) {
	e.t.Helper()
	nd := e.node(i)
	if err := nd.signalWait(syscall.SIGTERM, stopTimeout); err != nil {
		if err := nd.signalWait(syscall.SIGKILL, stopTimeout); err != nil {
			e.t.Fatalf("zktest: node %d: %v", i, err)
		}
	}
}

// signalWait signals the process and waits for it to exit. A stopped
// (paused) process is continued first, so that it can act on the signal.
func (nd *node) signalWait(sig syscall.Signal, timeout time.Duration) error {
	nd.mu.Lock()
	p, exited, paused := nd.proc, nd.exited, nd.paused
	nd.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.Signal(sig)
	if paused && sig != syscall.SIGKILL {
		_ = p.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
		nd.mu.Lock()
		if nd.proc == p {
			nd.proc = nil
		}
		nd.paused = false
		nd.mu.Unlock()
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running %s after %v", sig, timeout)
	}
}

// Pause stops node i with SIGSTOP: its clients time out as with a host
// that hangs. Its clock keeps running, so on Resume it may expire the
// sessions whose timeout passed meanwhile.
func (e *Ensemble) Pause(i int) { e.t.Helper(); e.pause(i, syscall.SIGSTOP, true) }

// Resume continues node i after Pause (SIGCONT).
func (e *Ensemble) Resume(i int) { e.t.Helper(); e.pause(i, syscall.SIGCONT, false) }

func (e *Ensemble) pause(i int, sig syscall.Signal, paused bool) {
	e.t.Helper()
	nd := e.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc == nil {
		e.t.Fatalf("zktest: node %d is not running", i)
	}
	if err := nd.proc.Signal(sig); err != nil {
		e.t.Fatalf("zktest: node %d: %v: %v", i, sig, err)
	}
	if paused {
		waitStopped(nd.proc.Pid)
	}
	nd.paused = paused
}

// Running reports whether node i's process is running (paused counts).
func (e *Ensemble) Running(i int) bool {
	nd := e.node(i)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.proc != nil
}

// WaitServing waits (at most 30s) until node i answers srvr with a mode
// (standalone, leader or follower): it is up and, in an ensemble, part of
// a quorum. It fails the test otherwise, and at once if the node exits.
func (e *Ensemble) WaitServing(i int) {
	e.t.Helper()
	if err := e.waitServing(i, serveTimeout); err != nil {
		e.t.Fatalf("zktest: %v", err)
	}
}

func (e *Ensemble) waitServing(i int, timeout time.Duration) error {
	nd := e.node(i)
	deadline := time.Now().Add(timeout)
	var last string
	for {
		nd.mu.Lock()
		running := nd.proc != nil
		nd.mu.Unlock()
		if !running {
			return fmt.Errorf("node %d is not running (log: %s)", i, nd.log)
		}
		out, err := FourLetterWord(e.Server(i), "srvr", time.Second)
		if err == nil && bytes.Contains(out, []byte("\nMode: ")) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = strings.TrimSpace(string(out))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d is not serving after %v: %s", i, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Mode returns what node i says of itself ("standalone", "leader",
// "follower"), or "" when it does not answer or serve.
func (e *Ensemble) Mode(i int) string {
	out, err := FourLetterWord(e.Server(i), "srvr", 5*time.Second)
	if err != nil {
		return ""
	}
	_, rest, ok := bytes.Cut(out, []byte("\nMode: "))
	if !ok {
		return ""
	}
	mode, _, _ := bytes.Cut(rest, []byte("\n"))
	return string(bytes.TrimSpace(mode))
}

// FourLetterWord sends a four-letter command (ruok, srvr, mntr, ...) to a
// server and returns its answer.
func FourLetterWord(server, cmd string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("tcp", server, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return buf.Bytes(), err
	}
	return buf.Bytes(), nil
}

// portInUse reports whether a node's log says a port was taken.
func (e *Ensemble) portInUse() bool {
	for _, nd := range e.nodes {
		b, _ := os.ReadFile(nd.log)
		if bytes.Contains(b, []byte("Address already in use")) {
			return true
		}
	}
	return false
}

// cleanup kills every node and prints the logs when the test failed.
func (e *Ensemble) cleanup() {
	for _, nd := range e.nodes {
		_ = nd.signalWait(syscall.SIGKILL, stopTimeout)
	}
	if !e.t.Failed() {
		return
	}
	for _, nd := range e.nodes {
		b, err := os.ReadFile(nd.log)
		if err != nil {
			continue
		}
		e.t.Logf("zktest: log of node %d (%s), last lines:\n%s", nd.id-1, nd.log, tail(b, 150))
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			return b
		}
	}
	return b[i+1:]
}
