package listen

import (
	"net"
	"testing"
	"time"
)

// startH2C serves a stack with the H2C layer: connections that start
// with the preface arrive on h2, the others on the returned server's
// conns.
func startH2C(t *testing.T, timeout time.Duration) (*ppServer, chan net.Conn) {
	t.Helper()
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h2 := make(chan net.Conn, 4)
	s := &ppServer{addr: base.Addr().String(), conns: make(chan net.Conn, 16)}
	s.ln = Stack(base, Named("http"), H2C(H2CConfig{Timeout: timeout, H2: func(c net.Conn) { h2 <- c }}))
	s.serve(t)
	return s, h2
}

// HTTP/1 requests, even ones shorter than HTTP/2's preface, go to Accept
// with every byte; a connection that starts with the preface goes to
// the HTTP/2 server, the preface read again; both keep their record.
func TestH2CSortsConnections(t *testing.T) {
	s, h2 := startH2C(t, 5*time.Second)
	for _, req := range []string{"GET / HTTP/1.0\r\n\r\n", "POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "PRIX"} {
		c := s.dial(t, "127.0.0.1")
		c.Write([]byte(req))
		got := s.accept(t)
		if got := readN(t, got, len(req)); got != req {
			t.Errorf("the server read %q; want %q", got, req)
		}
		if info := InfoOf(got); info == nil || info.Listener != "http" {
			t.Errorf("record %+v", info)
		}
	}
	c := s.dial(t, "127.0.0.1")
	// The preface in two pieces, and a frame after it.
	c.Write(h2Preface[:10])
	time.Sleep(50 * time.Millisecond)
	c.Write(append(append([]byte(nil), h2Preface[10:]...), "FRAME"...))
	select {
	case got := <-h2:
		if got := readN(t, got, len(h2Preface)+5); got != string(h2Preface)+"FRAME" {
			t.Errorf("the HTTP/2 server read %q", got)
		}
		if info := InfoOf(got); info == nil || info.Listener != "http" {
			t.Errorf("record %+v", info)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the preface did not reach the HTTP/2 server")
	}
	s.noAccept(t, 50*time.Millisecond)
}

// A connection that sends nothing, or stops inside the preface, is
// closed at the timeout, and holds up no other.
func TestH2CTimeout(t *testing.T) {
	s, h2 := startH2C(t, 200*time.Millisecond)
	silent := s.dial(t, "127.0.0.1")
	partial := s.dial(t, "127.0.0.1")
	partial.Write(h2Preface[:5])
	c := s.dial(t, "127.0.0.1")
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	s.accept(t)
	closedByServer(t, silent)
	closedByServer(t, partial)
	select {
	case <-h2:
		t.Error("a partial preface reached the HTTP/2 server")
	default:
	}
}

// Without an HTTP/2 server the layer is not there.
func TestH2COff(t *testing.T) {
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if ln := H2C(H2CConfig{})(base); ln != base {
		t.Errorf("H2C without H2 wrapped the listener: %T", ln)
	}
}
