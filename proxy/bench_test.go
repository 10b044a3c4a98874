package proxy

import (
	"bufio"
	"fmt"
	"net"
	"testing"

	"github.com/switchyard/switchyard/routes"
	"github.com/valyala/fasthttp"
)

// BenchmarkProxyRoundTrip measures a whole small proxied request over
// loopback: client → proxy → instance (a fasthttp server) and back, one
// keep-alive connection on each side. All three run in the benchmark's
// process; the client (fasthttp's Response.Read) and the instance
// allocate nothing in steady state, so allocs/op is the proxy's.
func BenchmarkProxyRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go backendSrv.Serve(ln)
	defer backendSrv.Shutdown()
	tbl, _ := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{{
		ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("i", ln.Addr().String(), "z", "g")},
	}})
	p := startProxy(b, Config{AccessLog: accessLogDiscard()}, tbl)

	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(fmt.Sprintf("GET /_search HTTP/1.1\r\nHost: %s.example.test\r\n\r\n", depA))
	br := bufio.NewReader(c)
	var resp fasthttp.Response
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := resp.Read(br); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 || string(resp.Body()) != "ok" {
			b.Fatalf("status %d, body %q", resp.StatusCode(), resp.Body())
		}
	}
}
