package head

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// RequestOf and ResponseOf are views: an edit through either side is seen
// by the other, so the fasthttp front end binds its heads without a copy.
func TestViewsShareTheHead(t *testing.T) {
	var fh fasthttp.RequestHeader
	fh.SetMethod("POST")
	fh.SetRequestURI("/a")
	fh.Set("X-One", "1")
	r := RequestOf(&fh)
	if string(r.Method()) != "POST" || string(r.RequestURI()) != "/a" || string(r.Peek("x-one")) != "1" {
		t.Fatalf("view reads %q %q %q", r.Method(), r.RequestURI(), r.Peek("x-one"))
	}
	r.Set("X-Two", "2")
	r.Del("X-One")
	if string(fh.Peek("X-Two")) != "2" || fh.Peek("X-One") != nil {
		t.Fatalf("edits through the view not seen: %q", fh.Header())
	}
	if r.Fast() != &fh {
		t.Fatal("Fast is not the head bound")
	}

	var fr fasthttp.ResponseHeader
	rs := ResponseOf(&fr)
	rs.SetStatusCode(503)
	rs.SetCanonical([]byte("X-Three"), []byte("3"))
	if fr.StatusCode() != 503 || string(fr.Peek("X-Three")) != "3" {
		t.Fatalf("response view: %q", fr.Header())
	}
}

// A head parsed by Read is written back as the transport sends it, and
// its fields read as the request path reads them.
func TestRequestReadWrite(t *testing.T) {
	const in = "GET /x/../y?q=1 HTTP/1.1\r\nHost: d.example.test\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 3\r\n\r\n"
	var r Request
	if err := r.Read(bufio.NewReader(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	if string(r.Host()) != "d.example.test" || r.ContentLength() != 3 || !r.IsGet() || r.IsHead() || r.IsConnect() {
		t.Fatalf("host %q, length %d, get %v", r.Host(), r.ContentLength(), r.IsGet())
	}
	var vals []string
	for k, v := range r.All() {
		if string(k) == "X-A" {
			vals = append(vals, string(v))
		}
	}
	if strings.Join(vals, ",") != "1,2" {
		t.Errorf("All yields X-A %q; want both, in order", vals)
	}
	if !strings.Contains(string(r.RawHeaders()), "X-A: 1\r\nX-A: 2\r\n") {
		t.Errorf("RawHeaders %q", r.RawHeaders())
	}
	r.SetProtocol("HTTP/1.1")
	r.SetContentLength(-1)
	out := string(r.AppendBytes(nil))
	if !strings.HasPrefix(out, "GET /x/../y?q=1 HTTP/1.1\r\n") || !strings.Contains(out, "Transfer-Encoding: chunked\r\n") || strings.Contains(out, "Content-Length") {
		t.Errorf("written head %q", out)
	}
}

func TestURIPath(t *testing.T) {
	for target, want := range map[string]string{
		"/_health":          "/_health",
		"/a/../_health":     "/_health",
		"//_health":         "/_health",
		"/%5Fhealth":        "/_health",
		"/x?y=/_health":     "/x",
		"http://h/_health":  "/_health",
		"/a/./b/%2e%2e/c/d": "/a/c/d",
	} {
		if got := string(URIPath([]byte("d.example.test"), []byte(target))); got != want {
			t.Errorf("URIPath(%q) = %q; want %q", target, got, want)
		}
	}
}
