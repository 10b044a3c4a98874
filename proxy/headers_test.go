package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/proxy/head"
)

// The one-pass check that tells stripHop* what to delete sees every header
// they delete, in any case, as parsed from the wire, and names it right.
func TestHopHeadersOfCoversTheHopHeaders(t *testing.T) {
	want := map[string]hopMask{"Expect": hopExpect}
	for i, name := range hopHeaders {
		want[name] = 1 << i
	}
	for _, name := range []string{"Proxy-Foo", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization"} {
		want[name] = hopProxy
	}
	for name, bit := range want {
		for _, k := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			v := "v"
			switch strings.ToLower(k) {
			case "transfer-encoding":
				v = "chunked"
			case "connection":
				v = "close"
			}
			var h head.Request
			raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Other: 1\r\n" + k + ": " + v + "\r\n\r\n"
			if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			if got := scanRequest(h.RawHeaders()).hop; got != bit {
				t.Errorf("request header %q: mask %b; want %b", k, got, bit)
			}
			var rh head.Response
			raw = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Other: 1\r\n" + k + ": " + v + "\r\n\r\n"
			if err := rh.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			respBit := bit
			if bit == hopExpect {
				respBit = 0 // a response's Expect is end-to-end
			}
			if got := hopHeadersOf(rh.All(), false); got != respBit {
				t.Errorf("response header %q: mask %b; want %b", k, got, respBit)
			}
		}
	}
	var h head.Request
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: abc\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if m := scanRequest(h.RawHeaders()).hop; m != 0 {
		t.Errorf("end-to-end headers taken for hop-by-hop ones: %b", m)
	}
}
