package listen

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// ppServer is a listener stack with the PROXY protocol layer over real
// loopback TCP, accepting in the background.
type ppServer struct {
	addr   string
	conns  chan net.Conn
	counts *ProxyCounts
	ln     net.Listener
}

func startPP(t *testing.T, mode ProxyMode, from string, timeout time.Duration) *ppServer {
	t.Helper()
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ppServer{addr: base.Addr().String(), conns: make(chan net.Conn, 16), counts: new(ProxyCounts)}
	s.ln = Stack(base, Named("http"), ProxyProtocol(ProxyConfig{
		Mode: mode, From: []netip.Prefix{prefix(from)}, Timeout: timeout, Counts: s.counts,
	}))
	s.serve(t)
	return s
}

// serve accepts from s.ln onto s.conns until the listener closes, and
// closes it when the test ends.
func (s *ppServer) serve(t *testing.T) {
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			t.Cleanup(func() { c.Close() })
			s.conns <- c
		}
	}()
}

// dial connects from the loopback address local.
func (s *ppServer) dial(t *testing.T, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *ppServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted in 5s")
		return nil
	}
}

// noAccept checks that no connection reaches the server for a while.
func (s *ppServer) noAccept(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Errorf("connection from %v accepted; want it refused", c.RemoteAddr())
	case <-time.After(d):
	}
}

// readN reads n bytes from c.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// closedByServer checks that the server closed c without a word.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from the client side: %d bytes, %v; want the connection closed", n, err)
	}
}

func v2Header(t *testing.T, cmd proxyproto.ProtocolVersionAndCommand, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2,
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	h.Command = cmd
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A listed peer's header sets the record's client; the peer stays the
// balancer, and the bytes after the header (sent with it) are the
// connection's first.
func TestProxyProtocolHeaders(t *testing.T) {
	const req = "GET / HTTP/1.1\r\n\r\n"
	cases := []struct {
		name   string
		header func(t *testing.T) []byte
		client string // want; "" for the peer
	}{
		{"v1 tcp4", func(*testing.T) []byte { return []byte("PROXY TCP4 203.0.113.7 127.0.0.1 4711 9200\r\n") }, "203.0.113.7:4711"},
		{"v1 tcp6", func(*testing.T) []byte { return []byte("PROXY TCP6 2001:db8::7 ::1 4711 9200\r\n") }, "[2001:db8::7]:4711"},
		{"v1 unknown", func(*testing.T) []byte { return []byte("PROXY UNKNOWN\r\n") }, ""},
		{"v2 tcp4", func(t *testing.T) []byte { return v2Header(t, proxyproto.PROXY, "198.51.100.9:5000", "127.0.0.1:9200") }, "198.51.100.9:5000"},
		{"v2 tcp6", func(t *testing.T) []byte { return v2Header(t, proxyproto.PROXY, "[2001:db8::1:2]:6000", "[::1]:9200") }, "[2001:db8::1:2]:6000"},
		{"v2 v4-mapped", func(t *testing.T) []byte {
			return v2Header(t, proxyproto.PROXY, "[::ffff:192.0.2.5]:6001", "[::1]:9200")
		}, "192.0.2.5:6001"},
		{"v2 local", func(t *testing.T) []byte { return v2Header(t, proxyproto.LOCAL, "198.51.100.9:5000", "127.0.0.1:9200") }, ""},
	}
	for _, mode := range []ProxyMode{ProxyOn, ProxyOptional} {
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				s := startPP(t, mode, "127.0.0.1/32", 5*time.Second)
				c := s.dial(t, "127.0.0.1")
				if _, err := c.Write(append(tc.header(t), req...)); err != nil {
					t.Fatal(err)
				}
				sc := s.accept(t)
				info := InfoOf(sc)
				if info == nil {
					t.Fatal("no record")
				}
				want := info.Peer
				if tc.client != "" {
					want = netip.MustParseAddrPort(tc.client)
				}
				if info.Client != want || info.Peer.Addr() != netip.MustParseAddr("127.0.0.1") || info.Listener != "http" {
					t.Errorf("record %+v; want client %v, peer 127.0.0.1, listener http", info, want)
				}
				if got := sc.RemoteAddr().String(); got != want.String() {
					t.Errorf("RemoteAddr %s; want %s", got, want)
				}
				if got := readN(t, sc, len(req)); got != req {
					t.Errorf("first bytes %q; want %q", got, req)
				}
				// Later bytes come from the socket.
				c.Write([]byte("more"))
				if got := readN(t, sc, 4); got != "more" {
					t.Errorf("later bytes %q", got)
				}
				for _, r := range Refusals() {
					if n := s.counts.Refused(r); n != 0 {
						t.Errorf("refused %s: %d", r, n)
					}
				}
			})
		}
	}
}

// A header that arrives in pieces, one TCP segment each, is read whole.
func TestProxyProtocolSplitHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(t *testing.T) []byte
		cuts   []int
	}{
		{"v1", func(*testing.T) []byte { return []byte("PROXY TCP6 2001:db8::7 ::1 4711 9200\r\n") }, []int{1, 3, 6, 20, 37}},
		{"v2", func(t *testing.T) []byte { return v2Header(t, proxyproto.PROXY, "[2001:db8::1:2]:6000", "[::1]:9200") }, []int{1, 5, 12, 14, 16, 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startPP(t, ProxyOn, "127.0.0.1", 5*time.Second)
			c := s.dial(t, "127.0.0.1")
			h := append(tc.header(t), "GET /"...)
			last := 0
			for _, cut := range append(tc.cuts, len(h)) {
				if _, err := c.Write(h[last:cut]); err != nil {
					t.Fatal(err)
				}
				last = cut
				time.Sleep(20 * time.Millisecond)
			}
			sc := s.accept(t)
			if got := InfoOf(sc).Client.Addr(); got != netip.MustParseAddr("2001:db8::7") && got != netip.MustParseAddr("2001:db8::1:2") {
				t.Errorf("client %v", got)
			}
			if got := readN(t, sc, 5); got != "GET /" {
				t.Errorf("first bytes %q", got)
			}
		})
	}
}

// What is refused is closed at once and counted, and never reaches the
// server; with optional, an unlisted peer's header is not honoured but
// passed on as data, and a listed peer may send none.
func TestProxyProtocolRefusals(t *testing.T) {
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 4711 9200\r\n"
	t.Run("on/unlisted", func(t *testing.T) {
		s := startPP(t, ProxyOn, "127.0.0.2", 5*time.Second)
		c := s.dial(t, "127.0.0.1")
		closedByServer(t, c)
		s.noAccept(t, 50*time.Millisecond)
		if n := s.counts.Refused(RefusedUnlisted); n != 1 {
			t.Errorf("refused unlisted: %d; want 1", n)
		}
	})
	t.Run("on/missing", func(t *testing.T) {
		s := startPP(t, ProxyOn, "127.0.0.1", 5*time.Second)
		c := s.dial(t, "127.0.0.1")
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		closedByServer(t, c)
		s.noAccept(t, 50*time.Millisecond)
		if n := s.counts.Refused(RefusedMissing); n != 1 {
			t.Errorf("refused missing: %d; want 1", n)
		}
	})
	for _, mode := range []ProxyMode{ProxyOn, ProxyOptional} {
		for _, bad := range []string{
			"PROXY TCP4 203.0.113.x 127.0.0.1 4711 9200\r\n",
			"PROXY TCP4 203.0.113.7 127.0.0.1 4711\r\n",
			"PROXY TCP4 203.0.113.7 127.0.0.1 4711 9200\n",
			"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x02ab",
		} {
			t.Run(mode.String()+"/malformed", func(t *testing.T) {
				s := startPP(t, mode, "127.0.0.1", 5*time.Second)
				c := s.dial(t, "127.0.0.1")
				c.Write([]byte(bad + "GET / HTTP/1.1\r\n\r\n"))
				closedByServer(t, c)
				s.noAccept(t, 50*time.Millisecond)
				if n := s.counts.Refused(RefusedInvalid); n != 1 {
					t.Errorf("%q: refused invalid: %d; want 1", bad, n)
				}
			})
		}
	}
	t.Run("optional/unlisted", func(t *testing.T) {
		s := startPP(t, ProxyOptional, "127.0.0.2", 5*time.Second)
		c := s.dial(t, "127.0.0.1")
		c.Write([]byte(v1))
		sc := s.accept(t)
		if info := InfoOf(sc); info.Client != info.Peer {
			t.Errorf("an unlisted peer's header was honoured: %+v", info)
		}
		if got := readN(t, sc, len(v1)); got != v1 {
			t.Errorf("first bytes %q; want the header, as data", got)
		}
	})
	t.Run("optional/listed without header", func(t *testing.T) {
		s := startPP(t, ProxyOptional, "127.0.0.0/8", 5*time.Second)
		c := s.dial(t, "127.0.0.1")
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		sc := s.accept(t)
		if info := InfoOf(sc); info.Client != info.Peer {
			t.Errorf("record %+v", info)
		}
		if got := readN(t, sc, 5); got != "GET /" {
			t.Errorf("first bytes %q", got)
		}
	})
}

// A peer that sends nothing is closed at the deadline, and holds up no
// other connection meanwhile.
func TestProxyProtocolTimeout(t *testing.T) {
	for _, mode := range []ProxyMode{ProxyOn, ProxyOptional} {
		t.Run(mode.String(), func(t *testing.T) {
			s := startPP(t, mode, "127.0.0.1", 300*time.Millisecond)
			silent := s.dial(t, "127.0.0.1")
			start := time.Now()
			// A partial header counts as silence too.
			partial := s.dial(t, "127.0.0.1")
			partial.Write([]byte("PROXY TCP4 203.0.113.7"))
			c := s.dial(t, "127.0.0.1")
			c.Write([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 4711 9200\r\n"))
			if sc := s.accept(t); InfoOf(sc).Client.Addr() != netip.MustParseAddr("203.0.113.7") {
				t.Errorf("record %+v", InfoOf(sc))
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Errorf("the good connection waited %v behind the silent ones", d)
			}
			closedByServer(t, silent)
			closedByServer(t, partial)
			if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
				t.Errorf("silent peers closed after %v; want about 300ms", d)
			}
			if n := s.counts.Refused(RefusedTimeout); n != 2 {
				t.Errorf("refused timeout: %d; want 2", n)
			}
		})
	}
}

// Closing the listener closes the connections whose header is awaited,
// and Accept returns net.ErrClosed.
func TestProxyProtocolClose(t *testing.T) {
	s := startPP(t, ProxyOn, "127.0.0.1", time.Minute)
	c := s.dial(t, "127.0.0.1")
	time.Sleep(50 * time.Millisecond) // accepted, header awaited
	s.ln.Close()
	closedByServer(t, c)
	if _, err := s.ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
	}
}

func TestParseProxyMode(t *testing.T) {
	for _, m := range []ProxyMode{ProxyOff, ProxyOn, ProxyOptional} {
		if got, err := ParseProxyMode(m.String()); got != m || err != nil {
			t.Errorf("ParseProxyMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseProxyMode("yes"); err == nil {
		t.Error("ParseProxyMode(yes): no error")
	}
}

// prefix parses a CIDR or a bare address (a /32 or /128).
func prefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}
