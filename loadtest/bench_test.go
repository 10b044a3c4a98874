package loadtest_test

import (
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/switchyard/switchyard/loadtest"
)

// BenchmarkClosedLoop measures the generator's own cost per request: a
// closed loop over loopback against an in-process fasthttp server that
// answers at once. ns/op includes the server's share of the machine;
// allocs/op includes the run's setup, spread over b.N requests.
func BenchmarkClosedLoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go s.Serve(ln)
	defer s.Shutdown()
	for _, bc := range []struct {
		name string
		cfg  loadtest.Config
	}{
		{"plain", loadtest.Config{Connections: 2}},
		{"keys", loadtest.Config{Connections: 2, Keys: []string{"a", "b", "c"}, OnResponse: func(r *loadtest.Result) { _ = r.Header("Server") }}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := bc.cfg
			cfg.URL, cfg.Requests = "http://"+ln.Addr().String()+"/", int64(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			r, err := loadtest.Run(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			if r.Completed != int64(b.N) {
				b.Fatalf("completed %d of %d: %+v", r.Completed, b.N, r)
			}
			b.ReportMetric(r.RPS, "req/s")
		})
	}
}
