package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The one-pass check that lets stripHop* skip their deletes sees every
// header they delete, in any case, as parsed from the wire.
func TestHasHopHeaderCoversTheHopHeaders(t *testing.T) {
	names := append([]string{"Proxy-Foo", "Expect"}, hopHeaders...)
	for _, name := range names {
		for _, k := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			v := "v"
			switch strings.ToLower(k) {
			case "transfer-encoding":
				v = "chunked"
			case "connection":
				v = "close"
			}
			var h fasthttp.RequestHeader
			raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Other: 1\r\n" + k + ": " + v + "\r\n\r\n"
			if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			if !hasHopHeader(h.All(), true) {
				t.Errorf("request header %q not seen", k)
			}
			if strings.EqualFold(k, "Expect") {
				continue
			}
			var rh fasthttp.ResponseHeader
			raw = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Other: 1\r\n" + k + ": " + v + "\r\n\r\n"
			if err := rh.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			if !hasHopHeader(rh.All(), false) {
				t.Errorf("response header %q not seen", k)
			}
		}
	}
	var h fasthttp.RequestHeader
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: abc\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if hasHopHeader(h.All(), true) {
		t.Error("end-to-end headers taken for hop-by-hop ones")
	}
}
