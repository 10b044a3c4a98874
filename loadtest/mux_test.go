package loadtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/loadtest"
)

// connCounter records, per request, the protocol, the key and the client
// connection it came on.
type connCounter struct {
	mu     sync.Mutex
	protos map[string]int
	keys   map[string]int
	conns  map[string]bool
}

func newConnCounter() *connCounter {
	return &connCounter{protos: map[string]int{}, keys: map[string]int{}, conns: map[string]bool{}}
}

func (c *connCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.protos[r.Proto]++
	c.keys[r.Header.Get("X-Found-Cluster")]++
	c.conns[r.RemoteAddr] = true
	c.mu.Unlock()
	w.Header().Set("X-Found-Handling-Instance", "i-1")
	w.Write([]byte("ok"))
}

// The HTTP/2 and HTTP/3 runs send Connections × Streams requests at once
// over Connections connections, with the keys, and see response headers.
func TestHTTP2AndHTTP3(t *testing.T) {
	for _, tc := range []struct {
		proto, want string
		serve       func(t *testing.T, h http.Handler) (url string, roots *x509.CertPool)
	}{
		{loadtest.HTTP2, "HTTP/2.0", serveH2},
		{loadtest.HTTP3, "HTTP/3.0", serveH3},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			c := newConnCounter()
			url, roots := tc.serve(t, c)
			var mu sync.Mutex
			instances := map[string]int{}
			r := run(t, loadtest.Config{
				URL: url, Protocol: tc.proto, Connections: 2, Streams: 4, Requests: 200,
				Keys: []string{"a", "b"}, TLSConfig: &tls.Config{RootCAs: roots},
				OnResponse: func(r *loadtest.Result) {
					mu.Lock()
					instances[string(r.Header("X-Found-Handling-Instance"))]++
					mu.Unlock()
				},
			})
			c.mu.Lock()
			defer c.mu.Unlock()
			if r.Status[200] != 200 || r.Failed() != 0 {
				t.Fatalf("got status %v, errors %v; want 200 responses 200", r.Status, r.Errors)
			}
			if c.protos[tc.want] != 200 || len(c.conns) != 2 {
				t.Errorf("server saw protocols %v over %d connections; want 200 %s over 2", c.protos, len(c.conns), tc.want)
			}
			if c.keys["a"] == 0 || c.keys["b"] == 0 || c.keys["a"]+c.keys["b"] != 200 {
				t.Errorf("server saw keys %v; want both of a and b, 200 in all", c.keys)
			}
			if instances["i-1"] != 200 {
				t.Errorf("OnResponse saw handling instances %v; want i-1 200 times", instances)
			}
			if r.BytesReceived < 200*2 {
				t.Errorf("got %d bytes received; want at least the bodies, %d", r.BytesReceived, 200*2)
			}
		})
	}
}

// A server that does not speak HTTP/2 fails every HTTP/2 request, each
// counted, rather than falling back to HTTP/1.1.
func TestHTTP2RefusedByAnHTTP1Server(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(s.Close)
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	r := run(t, loadtest.Config{URL: s.URL, Protocol: loadtest.HTTP2, TLSConfig: &tls.Config{RootCAs: roots}, Connections: 1, Requests: 5})
	if r.Errors[loadtest.KindOther] != 5 || r.Completed != 0 {
		t.Errorf("got status %v, errors %v; want 5 errors of kind other", r.Status, r.Errors)
	}
}

// serveH2 serves h over HTTP/2 and TLS and returns its URL and CA.
func serveH2(t *testing.T, h http.Handler) (string, *x509.CertPool) {
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	return s.URL + "/", roots
}

// serveH3 serves h over HTTP/3 with httptest's certificate and returns
// its URL and CA.
func serveH3(t *testing.T, h http.Handler) (string, *x509.CertPool) {
	ts := httptest.NewUnstartedServer(h)
	ts.StartTLS() // for its certificate only
	ts.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: ts.TLS.Certificates})}
	go s.Serve(udp)
	t.Cleanup(func() {
		s.Close()
		udp.Close()
	})
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	return "https://" + udp.LocalAddr().String() + "/", roots
}
