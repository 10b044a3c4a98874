// Package freeport picks loopback TCP ports for processes that are told
// their port before they bind it: the ones tests and the peer benchmark
// start.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
)

// given holds the ports this process's Listen handed out: a port picked,
// closed and handed to a process that has not bound it yet must not be
// picked again (drawn from 16 384, the 20 ports of ten proxies would
// hold the same one twice in about one launch of 90). It is forgotten
// when it holds half the ports Listen picks from.
var given struct {
	sync.Mutex
	ports map[int]bool
}

// Listen listens on a loopback TCP port picked below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range). A port picked free and
// then closed is only useful if nobody takes it before the process under
// test binds it; the kernel hands out ephemeral ports to every socket that
// binds port 0 or connects without binding, so a port from that range can
// be taken by any of them (the instances a demo starts, the connections of
// a test running in parallel). Below the range only another caller of this
// function can take it, and ports are picked at random among thousands,
// none that this process's Listen handed out before. It falls back to a kernel-chosen port when the range cannot be read or
// leaves no room below it.
func Listen() (net.Listener, error) {
	if lo, hi, ok := belowEphemeral(); ok {
		given.Lock()
		defer given.Unlock()
		if given.ports == nil || 2*len(given.ports) >= hi-lo {
			given.ports = map[int]bool{}
		}
		for range 64 {
			port := lo + rand.IntN(hi-lo)
			if given.ports[port] {
				continue
			}
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				given.ports[port] = true
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// belowEphemeral returns the ports [lo, hi) that Listen picks from:
// up to 16 384 ports just below the ephemeral range, none below 10 000.
func belowEphemeral() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return 0, 0, false
	}
	hi, lo = first, max(first-16384, 10000)
	return lo, hi, hi-lo >= 1024
}
