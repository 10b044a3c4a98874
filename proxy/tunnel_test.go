package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
		return mustTable(t, &routes.Deployment{ID: depA, Kind: "es", Serving: serving, Instances: []*routes.Instance{
			inst("blue", blue.addr, "z", "blue"), inst("green", green.addr, "z", "green")}})
	}
	const grace = time.Second
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
	c.SetReadDeadline(cut.Add(6 * time.Second))
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
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, p, "switchyard_upgraded_connections") != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := metricValue(t, p, "switchyard_upgraded_connections"); got != 1 {
		t.Errorf("switchyard_upgraded_connections = %v after the cut; want 1 (green's)", got)
	}
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
