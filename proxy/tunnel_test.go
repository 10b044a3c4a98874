package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
)

// upgradeBackend answers an Upgrade: echo request with 101 and then echoes
// every byte back; any other request gets 400.
func upgradeBackend(t *testing.T, name string) *backend {
	return startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "want an echo upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Instance: " + name + "\r\n\r\n" + name + ">")
		brw.Flush()
		io.Copy(c, brw)
	})
}

// dialUpgrade sends an upgrade request to the proxy and returns the
// connection after the response headers, and the status line.
func dialUpgrade(t *testing.T, addr, upgrade string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: "+depA+"\r\nConnection: Upgrade\r\nUpgrade: "+upgrade+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

func TestUpgradeIsTunneledAndCutAfterTheGrace(t *testing.T) {
	blue, green := upgradeBackend(t, "blue"), upgradeBackend(t, "green")
	table := func(serving map[string]int) *routes.Table {
		return mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: serving, Instances: []*routes.Instance{
			inst("blue", blue.addr, "z", "blue"), inst("green", green.addr, "z", "green")}})
	}
	const grace = 2 * time.Second
	p := startProxy(t, Config{RetireGrace: grace}, table(map[string]int{"blue": 100, "green": 0}))
	addr := strings.TrimPrefix(p.url, "http://")

	// Not switched: the instance's 400 comes back as a normal response.
	_, _, resp := dialUpgrade(t, addr, "other")
	if resp.StatusCode != 400 {
		t.Errorf("upgrade the instance refuses: %d; want its 400", resp.StatusCode)
	}

	c, br, resp := dialUpgrade(t, addr, "echo")
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") ||
		resp.Header.Get("X-Found-Handling-Instance") != "blue" || resp.Header.Get("X-Instance") != "blue" {
		t.Fatalf("upgrade: %d %v; want 101 from blue with Connection: Upgrade and Upgrade: echo", resp.StatusCode, resp.Header)
	}
	io.WriteString(c, "hello")
	buf := make([]byte, len("blue>hello"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "blue>hello" {
		t.Fatalf("through the tunnel: %q, %v; want %q", buf, err, "blue>hello")
	}
	if got := metricValue(t, p, "switchyard_upgraded_connections"); got != 1 {
		t.Errorf("switchyard_upgraded_connections = %v; want 1", got)
	}

	// Cutover: the tunnel to blue lives on for the grace, then is cut.
	cut := time.Now()
	p.Apply(table(map[string]int{"blue": 0, "green": 100}))
	io.WriteString(c, "still")
	buf = buf[:len("still")]
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "still" {
		t.Fatalf("tunnel right after the cutover: %q, %v; want it open for the grace", buf, err)
	}
	// The deadline is past the latest accepted cut, so that a tunnel left
	// open fails the test.
	c.SetReadDeadline(cut.Add(grace + 5*time.Second))
	_, err := br.ReadByte()
	took := time.Since(cut)
	t.Logf("tunnel to blue ended %v after the cutover (%v)", took, err)
	if err == nil || took < grace || took > grace+3*time.Second {
		t.Errorf("tunnel to blue ended %v after the cutover (%v); want cut after the %v grace", took, err, grace)
	}
	// A new upgrade goes to green.
	_, _, resp = dialUpgrade(t, addr, "echo")
	if resp.StatusCode != 101 || resp.Header.Get("X-Found-Handling-Instance") != "green" {
		t.Errorf("upgrade after the cutover: %d from %q; want 101 from green", resp.StatusCode, resp.Header.Get("X-Found-Handling-Instance"))
	}
	waitGauge(t, p, "switchyard_upgraded_connections", 1) // green's
}

// metricValue reads an unlabelled metric from the proxy's /metrics.
func metricValue(t *testing.T, p *testProxy, name string) float64 {
	t.Helper()
	_, body, _ := get(t, "http://"+p.AdminAddr().String()+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// pushBackend answers an Upgrade: echo request with 101 and then writes
// "tick" every 100 ms, reading nothing, until a write fails.
func pushBackend(t *testing.T) *backend {
	return startBackend(t, "push", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for i := 0; i < 600; i++ { // 60 s at most
			if _, err := io.WriteString(c, "tick"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// A tunnel lives while bytes pass either way and ends when nothing has
// passed for TunnelIdleTimeout.
func TestTunnelIdleTimeout(t *testing.T) {
	// The client's writes come every idle/5: a loaded machine may delay
	// one by most of a second without the tunnel going quiet.
	const idle = 2 * time.Second
	push, echo := pushBackend(t), upgradeBackend(t, "echo")
	tableFor := func(addr string) *routes.Table {
		return mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 100}, Instances: []*routes.Instance{inst("i", addr, "z", "g")}})
	}
	p := startProxy(t, Config{TunnelIdleTimeout: idle}, tableFor(push.addr))
	addr := strings.TrimPrefix(p.url, "http://")

	// Only the instance writes: the tunnel stays open past the timeout.
	c, br, resp := dialUpgrade(t, addr, "echo")
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d; want 101", resp.StatusCode)
	}
	until := time.Now().Add(idle * 3 / 2)
	c.SetReadDeadline(until.Add(5 * time.Second))
	buf := make([]byte, 4)
	for time.Now().Before(until) {
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("tunnel with the instance writing ended after %v: %v", time.Since(until.Add(-idle*3/2)), err)
		}
	}
	c.Close()

	// Only the client writes, and the instance echoes: open while it
	// writes, cut once both ways are quiet for the timeout.
	p.Apply(tableFor(echo.addr))
	c, br, resp = dialUpgrade(t, addr, "echo")
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d; want 101", resp.StatusCode)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	want := "echo>"
	var lastWrite time.Time
	for i := 0; i < 8; i++ { // 1.4 × idle of writes
		if i > 0 {
			time.Sleep(idle / 5)
		}
		io.WriteString(c, "x")
		lastWrite = time.Now()
		want += "x"
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("tunnel with the client writing: %q, %v; want %q", got, err, want)
	}
	_, err := br.ReadByte()
	took := time.Since(lastWrite)
	if err == nil || took < idle-idle/2 || took > idle+3*time.Second {
		t.Errorf("quiet tunnel ended %v after the last byte (%v); want about %v", took, err, idle)
	}
	waitGauge(t, p, "switchyard_upgraded_connections", 0)
}

// On shutdown, upgraded connections get the shutdown timeout to end on
// their own, then are cut; Run returns as soon as the last one ends.
func TestShutdownWaitsForTunnelsThenCutsThem(t *testing.T) {
	echo := upgradeBackend(t, "echo")
	tbl := mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 100}, Instances: []*routes.Instance{inst("i", echo.addr, "z", "g")}})
	roundTrip := func(c net.Conn, br *bufio.Reader, s string) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, s); err != nil {
			return err
		}
		got := make([]byte, len(s))
		if _, err := io.ReadFull(br, got); err != nil {
			return err
		}
		if string(got) != s {
			return errors.New("echoed " + string(got))
		}
		return nil
	}
	const shutdownTimeout = 3 * time.Second

	t.Run("cut at the shutdown timeout", func(t *testing.T) {
		p := startProxy(t, Config{ShutdownTimeout: shutdownTimeout}, tbl)
		c, br, resp := dialUpgrade(t, strings.TrimPrefix(p.url, "http://"), "echo")
		if resp.StatusCode != 101 {
			t.Fatalf("upgrade: %d; want 101", resp.StatusCode)
		}
		br.Discard(len("echo>"))
		start := time.Now()
		p.cancel()
		time.Sleep(shutdownTimeout / 3)
		if err := roundTrip(c, br, "during"); err != nil {
			t.Errorf("tunnel during the shutdown: %v; want it open", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := br.ReadByte()
		took := time.Since(start)
		if err == nil || took < shutdownTimeout || took > shutdownTimeout+3*time.Second {
			t.Errorf("tunnel ended %v after the shutdown began (%v); want cut after the %v shutdown timeout", took, err, shutdownTimeout)
		}
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup's stop
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after the tunnel was cut")
		}
		if !strings.Contains(p.logBuf.String(), "cutting upgraded connections") {
			t.Errorf("no log line about the cut:\n%s", p.logBuf.String())
		}
	})

	t.Run("ends on its own", func(t *testing.T) {
		p := startProxy(t, Config{ShutdownTimeout: 20 * time.Second}, tbl)
		c, br, resp := dialUpgrade(t, strings.TrimPrefix(p.url, "http://"), "echo")
		if resp.StatusCode != 101 {
			t.Fatalf("upgrade: %d; want 101", resp.StatusCode)
		}
		br.Discard(len("echo>"))
		p.cancel()
		// The shutdown is under way once the listener is closed.
		testutil.Eventually(t, 10*time.Second, "the listener refuses connections", func() bool {
			c, err := net.DialTimeout("tcp", p.Addr().String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		if err := roundTrip(c, br, "during"); err != nil {
			t.Errorf("tunnel during the shutdown: %v; want it open", err)
		}
		closed := time.Now()
		c.Close()
		select {
		case err := <-p.done:
			p.done <- err
			if took := time.Since(closed); took > 5*time.Second {
				t.Errorf("Run returned %v after the last tunnel closed", took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of the last tunnel closing (shutdown timeout 20s)")
		}
		if strings.Contains(p.logBuf.String(), "cutting upgraded connections") {
			t.Errorf("logged a cut although the tunnel ended on its own:\n%s", p.logBuf.String())
		}
	})
}

// waitGauge waits up to 10 s for an unlabelled metric to reach want.
func waitGauge(t *testing.T, p *testProxy, name string, want float64) {
	t.Helper()
	testutil.EventuallyErr(t, 10*time.Second, fmt.Sprintf("%s = %v", name, want), func() error {
		if got := metricValue(t, p, name); got != want {
			return fmt.Errorf("%s = %v", name, got)
		}
		return nil
	})
}
