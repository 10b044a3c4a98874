package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/switchyard/switchyard/routes"
	"github.com/valyala/fasthttp"
)

// BenchmarkProxyRoundTrip measures a whole small proxied request over
// loopback: client → proxy → instance (a fasthttp server) and back, one
// keep-alive connection on each side.
func BenchmarkProxyRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go backendSrv.Serve(ln)
	defer backendSrv.Shutdown()
	tbl, _ := routes.NewTable("example.test", nil, []*routes.Deployment{{
		ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("i", ln.Addr().String(), "z", "g")},
	}})
	t := &testing.T{}
	p := startProxy(t, Config{AccessLog: accessLogDiscard()}, tbl)
	defer p.cancel()

	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(fmt.Sprintf("GET /_search HTTP/1.1\r\nHost: %s.example.test\r\n\r\n", depA))
	br := bufio.NewReader(c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
