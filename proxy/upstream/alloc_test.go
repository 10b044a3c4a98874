//go:build !race

package upstream

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/switchyard/switchyard/proxy/head"
)

// An exchange over a pooled loopback connection — awaited send, response
// headers, body — allocates nothing in steady state.
func TestRoundTripAllocs(t *testing.T) {
	// The instance allocates nothing either: AllocsPerRun counts the
	// whole process. It answers each bodiless request head.
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 { // the blank line that ends the head
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
	do := func() {
		if err := tr.RoundTrip(addr, req, resp); err != nil {
			t.Fatal(err)
		}
		if n, _ := io.ReadFull(resp.Body, buf[:2]); n != 2 {
			t.Fatal("short body")
		}
		resp.Body.Close()
	}
	for i := 0; i < 100; i++ {
		do()
	}
	if allocs := testing.AllocsPerRun(1000, do); allocs >= 1 {
		t.Errorf("%.2f allocations per exchange; want 0", allocs)
	}
}
