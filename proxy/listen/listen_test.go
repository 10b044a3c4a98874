package listen

import (
	"net"
	"net/netip"
	"testing"
)

// A stack's layers run in order, and a connection without a record gets
// one from Named, with the peer as the client.
func TestStack(t *testing.T) {
	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	var order []string
	mark := func(s string) Layer {
		return func(ln net.Listener) net.Listener { order = append(order, s); return ln }
	}
	ln := Stack(base, mark("a"), Named("http"), mark("b"))
	if len(order) != 2 || order[0] != "a" || order[1] != "b" {
		t.Errorf("layers applied in order %q", order)
	}
	go func() {
		c, err := net.Dial("tcp", base.Addr().String())
		if err == nil {
			defer c.Close()
			var b [1]byte
			c.Read(b[:])
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info := InfoOf(c)
	if info == nil {
		t.Fatal("no record")
	}
	if info.Listener != "http" || info.Peer != info.Client || info.Peer.Addr() != netip.MustParseAddr("127.0.0.1") || info.TLS != nil {
		t.Errorf("record %+v", info)
	}
	// Named keeps a record a lower layer made.
	again := named{Listener: oneConn{c}, name: "other"}
	c2, _ := again.Accept()
	if InfoOf(c2) != info {
		t.Error("Named replaced an existing record")
	}
}

type oneConn struct{ c net.Conn }

func (o oneConn) Accept() (net.Conn, error) { return o.c, nil }
func (o oneConn) Close() error              { return nil }
func (o oneConn) Addr() net.Addr            { return o.c.LocalAddr() }

func TestNewInfoUnmaps(t *testing.T) {
	a := &net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.7"), Port: 4711}
	if got := NewInfo("x", a).Client.Addr(); got != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("client %v", got)
	}
}
