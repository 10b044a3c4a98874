package upstream

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/switchyard/switchyard/proxy/head"
)

// BenchmarkRoundTrip measures one small exchange on a pooled loopback
// connection: the awaited send (with the check of the reused connection),
// the response head, a 2-byte body. The instance is a raw loop in the same
// process that answers each request head.
func BenchmarkRoundTrip(b *testing.B) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
	addr := rawServer(b, func(c net.Conn, br *bufio.Reader) {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 {
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}
	})
	tr := New(Config{})
	defer tr.Close()
	req := newReq("GET", "/")
	var rh head.Response
	resp := &Response{Header: &rh}
	var buf [16]byte
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.RoundTrip(addr, req, resp); err != nil {
			b.Fatal(err)
		}
		if n, _ := io.ReadFull(resp.Body, buf[:2]); n != 2 {
			b.Fatal("short body")
		}
		resp.Body.Close()
	}
	if s := tr.Stats(""); s.Dials != 1 {
		b.Errorf("%d dials; want 1", s.Dials)
	}
}
