//go:build !race

package loadtest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// Sending a request and recording it must not allocate once the connection
// is up: the generator shares the machine with the proxy it measures.
func TestSendAllocs(t *testing.T) {
	url := cannedServer(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"plain", Config{}},
		{"keys and hook", Config{Keys: []string{"a", "b"}, OnResponse: func(r *Result) { _ = r.Header("X-Found-Handling-Instance") }}},
		{"host template and body", Config{Method: "POST", Body: PatternBody(100), Keys: []string{"a", "b"}, HostTemplate: "{key}.example.test"}},
	} {
		cfg := tc.cfg
		cfg.URL = url
		p, err := newPlan(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l := &Load{p: p, start: time.Now(), ctx: context.Background(), shards: []*shard{newShard()}}
		w := newWorker(l, l.shards[0], rand.NewPCG(1, 2))
		var k int64
		send := func() {
			now := time.Now()
			w.send(k, now, now, 0)
			k++
		}
		for range 10 {
			send()
		}
		if n := testing.AllocsPerRun(500, send); n != 0 {
			t.Errorf("%s: %v allocations per request; want 0", tc.name, n)
		}
		w.closeConn()
		if r := sum(l.shards); r.Failed() != 0 || r.Completed != k {
			t.Errorf("%s: got completed %d, failed %d; want %d, 0", tc.name, r.Completed, r.Failed(), k)
		}
	}
}

// cannedServer answers every request that has no body or a 100-byte one
// with the same response, without allocating, so that it does not count in
// AllocsPerRun.
func cannedServer(t *testing.T) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Found-Handling-Instance: i-1\r\n\r\nok")
	addr := testutil.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 64<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if end < 0 {
					break
				}
				end += 4
				if bytes.HasPrefix(buf, []byte("POST")) {
					if n < end+100 {
						break
					}
					end += 100
				}
				c.Write(resp)
				n = copy(buf, buf[end:n])
			}
		}
	})
	return "http://" + addr + "/"
}
