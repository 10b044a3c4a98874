package freeport

import (
	"net"
	"testing"
)

func TestListenBelowEphemeral(t *testing.T) {
	lo, hi, ok := belowEphemeral()
	if !ok {
		t.Skip("no room below the ephemeral range here: Listen falls back to port 0")
	}
	seen := map[int]bool{}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range 20 {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if port < lo || port >= hi {
			t.Errorf("port %d; want one in [%d, %d), below the ephemeral range", port, lo, hi)
		}
		if seen[port] {
			t.Errorf("port %d handed out twice while held", port)
		}
		seen[port] = true
	}
}

// A port handed out and closed again is not handed out again: the
// process it was given to may not have bound it yet.
func TestListenHandsOutAPortOnce(t *testing.T) {
	lo, hi, ok := belowEphemeral()
	if !ok {
		t.Skip("no room below the ephemeral range here: Listen falls back to port 0")
	}
	// Drawn at random from thousands, a few hundred ports would repeat.
	n := min(2000, (hi-lo)/4)
	seen := map[int]bool{}
	for range n {
		ln, err := Listen()
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}
