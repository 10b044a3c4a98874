package yardload_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/internal/yardload"
	"github.com/switchyard/switchyard/loadtest"
)

// protoCounter counts requests by protocol and client connection.
type protoCounter struct {
	mu     sync.Mutex
	protos map[string]int
	conns  map[string]bool
}

func (c *protoCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.protos == nil {
		c.protos, c.conns = map[string]int{}, map[string]bool{}
	}
	c.protos[r.Proto]++
	c.conns[r.RemoteAddr] = true
}

// --http2 and --http3 speak their protocol over the connections asked
// for, trusting the CA of --ca; --insecure trusts any certificate.
func TestMainHTTP2HTTP3AndCA(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		serve func(*testing.T, http.Handler) (url string, ts *httptest.Server)
		proto string
		conns int
	}{
		{"http1 insecure", []string{"--insecure"}, serveTLS(false), "HTTP/1.1", 2},
		{"http1 ca", []string{"--ca", ""}, serveTLS(false), "HTTP/1.1", 2},
		{"http2 ca", []string{"--http2", "--streams", "3", "--ca", ""}, serveTLS(true), "HTTP/2.0", 2},
		{"http2 insecure", []string{"--http2", "--insecure"}, serveTLS(true), "HTTP/2.0", 2},
		{"http3 ca", []string{"--http3", "--streams", "3", "--ca", ""}, serveH3, "HTTP/3.0", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c protoCounter
			url, ts := tc.serve(t, &c)
			args := []string{"--url", url, "--connections", "2", "--requests", "60", "-o", "json"}
			for _, f := range tc.flags {
				if f == "" {
					f = caFile(t, ts)
				}
				args = append(args, f)
			}
			var stdout, stderr bytes.Buffer
			if code := yardload.Main(args, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
				t.Fatalf("yardload %q: got exit %d, stderr %q; want 0, nothing", args, code, stderr.String())
			}
			var r loadtest.Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if r.Status[200] != 60 || c.protos[tc.proto] != 60 || len(c.conns) != tc.conns {
				t.Errorf("got status %v, errors %v; server saw %v over %d connections; want 60 200s of %s over %d",
					r.Status, r.Errors, c.protos, len(c.conns), tc.proto, tc.conns)
			}
		})
	}
}

// Without --ca or --insecure, a certificate of no trusted CA fails every
// request, as an error of kind other.
func TestMainUntrustedCertificateFails(t *testing.T) {
	url, _ := serveTLS(true)(t, http.NotFoundHandler())
	var stdout, stderr bytes.Buffer
	if code := yardload.Main([]string{"--url", url, "--http2", "--requests", "3"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "other: 3") {
		t.Errorf("got exit %d, stdout %q; want 0 and 3 errors of kind other", code, stdout.String())
	}
}

func TestMainTableNamesTheProtocol(t *testing.T) {
	url, ts := serveTLS(true)(t, http.NotFoundHandler())
	var stdout, stderr bytes.Buffer
	code := yardload.Main([]string{"--url", url, "--http2", "--streams", "2", "--connections", "3", "--requests", "6", "--ca", caFile(t, ts)}, &stdout, &stderr)
	if want := "closed loop, HTTP/2, 3 connections × 2 streams"; code != 0 || !strings.Contains(stdout.String(), want) {
		t.Errorf("got exit %d, stdout %q; want 0 and %q", code, stdout.String(), want)
	}
}

// serveTLS returns a function that serves h over TLS, with HTTP/2 when
// h2, and returns its URL and server.
func serveTLS(h2 bool) func(*testing.T, http.Handler) (string, *httptest.Server) {
	return func(t *testing.T, h http.Handler) (string, *httptest.Server) {
		s := httptest.NewUnstartedServer(h)
		s.EnableHTTP2 = h2
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL + "/", s
	}
}

// serveH3 serves h over HTTP/3 with httptest's certificate, and returns
// its URL and the (closed) TLS test server that holds the certificate.
func serveH3(t *testing.T, h http.Handler) (string, *httptest.Server) {
	ts := httptest.NewUnstartedServer(h)
	ts.StartTLS()
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
	return "https://" + udp.LocalAddr().String() + "/", ts
}

// caFile writes the certificate of ts to a PEM file and returns its path.
func caFile(t *testing.T, ts *httptest.Server) string {
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
