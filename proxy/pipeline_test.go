package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// A client that pipelines — sends its next requests while the first is
// still being proxied, each in its own segment — gets every answer, in
// order, each within a fraction of a second (the client connection's wait
// for the next request must not miss data that came early).
func TestPipelinedRequestsInSeparateSegments(t *testing.T) {
	slow := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the next requests arrive meanwhile
		io.WriteString(w, r.URL.Path)
	})
	tbl := mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{inst("b", slow.addr, "z1", "blue")}})
	p := startProxy(t, Config{AccessLog: accessLogDiscard()}, tbl)
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const n = 8
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(c, "GET /r%d HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: %s\r\n\r\n", i, depA)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	br := bufio.NewReader(c)
	start := time.Now()
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("/r%d", i); resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("response %d: %d %q; want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	// 8 × 20 ms at the instance, plus at most a few 10 ms waits of the
	// client connection before it is taken for a pipelining one.
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("%d pipelined requests took %v", n, el)
	}
}
