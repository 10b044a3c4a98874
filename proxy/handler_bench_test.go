package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/proxy/tlscert/tlstest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func BenchmarkRouteKeyHeader(b *testing.B) {
	header, suffix := []byte(depA), []byte(".example.test")
	b.ReportAllocs()
	var buf [maxKeyLen]byte
	for i := 0; i < b.N; i++ {
		if routeKey(buf[:], header, nil, suffix) == nil {
			b.Fatal("no key")
		}
	}
}

func BenchmarkRouteKeyHost(b *testing.B) {
	host, suffix := []byte("Prod-Search.ES.example.test:9200"), []byte(".example.test")
	b.ReportAllocs()
	var buf [maxKeyLen]byte
	for i := 0; i < b.N; i++ {
		if routeKey(buf[:], nil, host, suffix) == nil {
			b.Fatal("no key")
		}
	}
}

func BenchmarkPickWeighted(b *testing.B) {
	tbl, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{{
		ID: depA, Kind: "es", Serving: map[string]int{"blue": 90, "green": 10},
		Instances: []*routes.Instance{inst("a", "x:1", "z1", "blue"), inst("b", "x:2", "z2", "blue"),
			inst("c", "x:3", "z1", "blue"), inst("d", "x:4", "z2", "green")},
	}})
	if err != nil {
		b.Fatal(err)
	}
	d, p := tbl.Deployments()[0], zones.Weighted{}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p.Pick(d) == nil {
				b.Fatal("no instance")
			}
		}
	})
}

// BenchmarkHandlerInMemory runs whole proxied requests with every
// connection in memory: a fasthttp client, the proxy, and an instance
// (fasthttp server). allocs/op is the proxy's plus the in-memory client's
// and instance's (both allocation-free in steady state).
// Sub-benchmarks by response body size: 2 B, 4 KiB (read whole, with the
// headers) and 256 KiB (streamed: larger than prefetchBytes).
func BenchmarkHandlerInMemory(b *testing.B) {
	for _, size := range []int{2, 4 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			do, stop := inMemoryProxy(b, accessLogDiscard(), size)
			defer stop()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				do()
			}
		})
	}
}

// inMemoryProxy starts an instance that answers with bodySize bytes and a
// proxy on in-memory listeners and returns a function that makes one
// request through them.
func inMemoryProxy(tb testing.TB, alog accesslog.Config, bodySize int) (do func(), stop func()) {
	return inMemoryProxyOver(tb, alog, bodySize, false)
}

// inMemoryProxyOver is inMemoryProxy, with the client's connection over
// TLS (the proxy's TLS layer, a certificate of a test CA) when tlsOn.
func inMemoryProxyOver(tb testing.TB, alog accesslog.Config, bodySize int, tlsOn bool) (do func(), stop func()) {
	backendLn := fasthttputil.NewInmemoryListener()
	body := bytes.Repeat([]byte("x"), bodySize)
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }}
	go backend.Serve(backendLn)

	tbl, _ := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{{
		ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("i", "memory:1", "z", "g")},
	}})
	cfg := Config{
		AccessLog: alog,
		Dial:      func(string, time.Duration) (net.Conn, error) { return backendLn.Dial() },
		Logger:    discardLogger(),
	}
	var ca *tlstest.CA
	if tlsOn {
		ca = tlstest.NewCA(tb)
		cfg.TLS.Listen = "127.0.0.1:0" // not bound: the in-memory listener serves
		cfg.TLS.CertFile, cfg.TLS.KeyFile = ca.Leaf(tb, time.Now().Add(time.Hour), "proxy").Write(tb, tb.TempDir(), "proxy")
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.Apply(tbl)
	proxyLn := fasthttputil.NewInmemoryListener()
	c := &fasthttp.HostClient{Addr: "proxy", Dial: func(string) (net.Conn, error) { return proxyLn.Dial() }}
	if tlsOn {
		go s.srv.Serve(listen.Stack(proxyLn, listen.Named(tlsListenerName), s.tlsLayer()))
		c.IsTLS = true
		c.TLSConfig = &tls.Config{RootCAs: ca.Pool(), ServerName: "proxy", NextProtos: []string{"http/1.1"}}
	} else {
		go s.srv.Serve(proxyLn)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	if tlsOn {
		req.SetRequestURI("https://proxy/_search")
	} else {
		req.SetRequestURI("http://proxy/_search")
	}
	req.Header.Set("X-Found-Cluster", depA)
	do = func() {
		if err := c.Do(req, resp); err != nil {
			tb.Fatal(err)
		}
		if resp.StatusCode() != 200 || len(resp.Body()) != bodySize {
			tb.Fatalf("status %d, %d bytes of body; want 200, %d bytes", resp.StatusCode(), len(resp.Body()), bodySize)
		}
	}
	stop = func() {
		s.srv.Shutdown()
		backend.Shutdown()
		s.transport.Close()
		s.alog.Close()
	}
	return do, stop
}

// BenchmarkHTTPHandlerInMemory is BenchmarkHandlerInMemory through the
// net/http front end (the handler of HTTP/2 and HTTP/3), called
// directly with a recorder: the front end's own cost per request, with
// the instance in memory.
func BenchmarkHTTPHandlerInMemory(b *testing.B) {
	for _, size := range []int{2, 4 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			backendLn := fasthttputil.NewInmemoryListener()
			body := bytes.Repeat([]byte("x"), size)
			backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }}
			go backend.Serve(backendLn)
			defer backend.Shutdown()
			tbl, _ := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{{
				ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
				Instances: []*routes.Instance{inst("i", "memory:1", "z", "g")},
			}})
			s, err := New(Config{
				AccessLog: accessLogDiscard(),
				Dial:      func(string, time.Duration) (net.Conn, error) { return backendLn.Dial() },
				Logger:    discardLogger(),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.transport.Close()
			s.Apply(tbl)
			h := s.HTTPHandler()
			req := httptest.NewRequest("GET", "http://proxy/_search", nil)
			req.Header.Set("X-Found-Cluster", depA)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "bench")
			req.RemoteAddr = "127.0.0.1:50000"
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 || w.Body.Len() != size {
					b.Fatalf("status %d, %d bytes; want 200, %d", w.Code, w.Body.Len(), size)
				}
			}
		})
	}
}
