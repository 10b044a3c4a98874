//go:build !race

package clientconn

import (
	"io"
	"testing"
	"time"
)

// A keep-alive exchange through a Conn — deadlines as the server sets
// them, the response write, the waiting read — allocates nothing.
func TestExchangeAllocs(t *testing.T) {
	s, c := pair(t)
	req, resp := []byte("request"), []byte("response")
	buf := make([]byte, 64)
	cbuf := make([]byte, len(resp))
	do := func() {
		now := time.Now()
		s.SetWriteDeadline(now.Add(time.Minute))
		if _, err := s.Write(resp); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, cbuf); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(now.Add(time.Minute))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(buf); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(now.Add(10 * time.Second))
	}
	for i := 0; i < 100; i++ {
		do()
	}
	if allocs := testing.AllocsPerRun(1000, do); allocs >= 1 {
		t.Errorf("%.2f allocations per exchange; want 0", allocs)
	}
}
