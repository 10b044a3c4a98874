package proxy

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// A client that resets its connection before sending a whole request
// (a balancer's TCP probe, a client gone) gets no access log line; one
// that sends garbage still gets its 400 and its line.
func TestResetBeforeARequestIsNotLogged(t *testing.T) {
	logPath := t.TempDir() + "/access.log"
	cfg := Config{}
	cfg.AccessLog.Path = logPath
	p := startProxy(t, cfg, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{inst("a-1", "127.0.0.1:1", "zone-a", "blue")}}))
	for _, partial := range []string{"", "GET /x HT"} {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if partial != "" {
			c.Write([]byte(partial))
		}
		time.Sleep(50 * time.Millisecond) // the proxy is reading
		c.(*net.TCPConn).SetLinger(0)     // close with a reset
		c.Close()
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GARBAGE\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400") {
		t.Errorf("garbage answered %q; want 400", buf[:n])
	}
	p.stop(t) // flushes the access log
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"status_code":400`) {
		t.Errorf("access log has %d lines; want only the garbage's 400:\n%s", len(lines), data)
	}
}
