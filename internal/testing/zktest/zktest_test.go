package zktest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/internal/testing/testutil"
)

func TestStandaloneRestartKeepsData(t *testing.T) {
	t.Parallel()
	e := Start(t)
	if got := e.Mode(0); got != "standalone" {
		t.Fatalf("mode: got %q; want standalone", got)
	}
	conn := Connect(t, e.Servers(), time.Second)
	if _, err := conn.Create("/x", []byte("1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	e.Kill(0)
	if e.Running(0) {
		t.Fatal("node 0 runs after Kill")
	}
	e.Start(0)
	e.WaitServing(0)
	testutil.Eventually(t, 10*time.Second, "data after restart", func() bool {
		b, _, err := conn.Get("/x")
		return err == nil && string(b) == "1"
	})

	e.Stop(0)
	e.Start(0)
	e.WaitServing(0)
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := Start(t)
	e.Pause(0)
	if _, err := FourLetterWord(e.Server(0), "ruok", 200*time.Millisecond); err == nil {
		t.Fatal("a paused server answered ruok")
	}
	e.Resume(0)
	e.WaitServing(0)
	if out, err := FourLetterWord(e.Server(0), "ruok", 5*time.Second); err != nil || string(out) != "imok" {
		t.Fatalf("ruok: got %q, %v; want imok", out, err)
	}
}

func TestExpireSession(t *testing.T) {
	t.Parallel()
	e := Start(t)
	conn, events, err := zk.Connect(e.Servers(), time.Second, zk.WithLogger(Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitState(t, events, zk.StateHasSession)
	if _, err := conn.Create("/eph", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	old := conn.SessionID()

	start := time.Now()
	e.ExpireSession(conn)
	waitState(t, events, zk.StateExpired)
	waitState(t, events, zk.StateHasSession)
	if conn.SessionID() == old {
		t.Fatal("same session id after expiry")
	}
	if ok, _, err := conn.Exists("/eph"); err != nil || ok {
		t.Fatalf("ephemeral node after expiry: exists=%v err=%v; want gone", ok, err)
	}
	// ExpireSession returns once the server has closed the session (or
	// found it expired already, which it does not do to a live client). How
	// long the client takes to notice depends on the machine's load, so it
	// is only logged.
	t.Logf("expiry took %v", time.Since(start))
}

func TestProxyBlockExpiresSession(t *testing.T) {
	t.Parallel()
	e := Start(t)
	p := NewProxy(t, e.Server(0))
	conn, events, err := zk.Connect([]string{p.Addr()}, 500*time.Millisecond, zk.WithLogger(Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitState(t, events, zk.StateHasSession)
	old := conn.SessionID()

	p.Block()
	waitState(t, events, zk.StateDisconnected)
	time.Sleep(3 * time.Second) // well past the session timeout: a loaded server can be late to expire it
	p.Unblock()
	waitState(t, events, zk.StateExpired)
	waitState(t, events, zk.StateHasSession)
	if conn.SessionID() == old {
		t.Fatal("same session after a partition longer than the timeout")
	}
}

func TestEnsembleQuorumLoss(t *testing.T) {
	t.Parallel()
	e := StartEnsemble(t, 3)
	if got := len(e.Servers()); got != 3 {
		t.Fatalf("servers: got %d; want 3", got)
	}
	conn := Connect(t, e.Servers(), 2*time.Second)
	if _, err := conn.Create("/q", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	e.Kill(1)
	e.Kill(2)
	testutil.Eventually(t, 10*time.Second, "node 0 stops serving without a quorum", func() bool { return e.Mode(0) == "" })
	e.Start(1)
	e.Start(2)
	for i := 0; i < 3; i++ {
		e.WaitServing(i)
	}
	testutil.Eventually(t, 10*time.Second, "write after quorum is back", func() bool {
		_, err := conn.Set("/q", []byte("back"), -1)
		return err == nil
	})
}

func waitState(t *testing.T, events <-chan zk.Event, want zk.State) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal(errors.New("event channel closed"))
			}
			if ev.Type == zk.EventSession && ev.State == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event after 10s", want)
		}
	}
}

// The server's JVM options follow HeapEnv: the fast-starting ones for
// tests, a production server's for benchmarks. Read from the running
// server's command line.
func TestJVMFlagsFollowHeapEnv(t *testing.T) {
	for _, tc := range []struct {
		heap      string
		want, not []string
	}{
		{"", []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}, []string{"-Xms", "-XX:+UseG1GC"}},
		{"192m", []string{"-Xms192m", "-Xmx192m", "-XX:+UseG1GC"}, []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel"}},
	} {
		t.Run("heap="+tc.heap, func(t *testing.T) {
			t.Setenv(HeapEnv, tc.heap)
			e := Start(t)
			nd := e.node(0)
			nd.mu.Lock()
			pid := nd.proc.Pid
			nd.mu.Unlock()
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				t.Skipf("no command line of the server: %v", err)
			}
			args := strings.Split(string(b), "\x00")
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("server's command line %q lacks %s", args, w)
				}
			}
			for _, n := range tc.not {
				if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, n) }) {
					t.Errorf("server's command line %q has %s", args, n)
				}
			}
		})
	}
}
