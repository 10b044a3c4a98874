package proxy

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 9110 7.6.1) and the headers a proxy must not
// pass on: these, and every Proxy-* header (Proxy-Connection,
// Proxy-Authenticate, Proxy-Authorization...). The order gives their bits
// in a hopMask.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// A hopMask has bit i set when hopHeaders[i] is present, and the bits
// below for the others.
type hopMask uint16

const (
	hopConnection hopMask = 1 << iota
	hopKeepAlive
	hopTe
	hopTrailer
	hopTransferEncoding
	hopUpgrade
	hopExpect // requests only
	hopProxy  // a Proxy-* header
)

const (
	hdrFoundCluster     = "X-Found-Cluster"
	hdrRequestID        = "X-Cloud-Request-Id"
	hdrHandlingCluster  = "X-Found-Handling-Cluster"
	hdrHandlingInstance = "X-Found-Handling-Instance"
	hdrForwardedFor     = "X-Forwarded-For"
	hdrForwardedProto   = "X-Forwarded-Proto"
	hdrForwardedHost    = "X-Forwarded-Host"
	hdrExpect           = "Expect"
	hdrUpgrade          = "Upgrade"
)

var strProxyPrefix = []byte("Proxy-")

// Canonical header names as bytes, for SetCanonical (no normalizing copy).
var (
	strRequestID        = []byte(hdrRequestID)
	strHandlingCluster  = []byte(hdrHandlingCluster)
	strHandlingInstance = []byte(hdrHandlingInstance)
	strForwardedFor     = []byte(hdrForwardedFor)
	strForwardedProto   = []byte(hdrForwardedProto)
	strForwardedHost    = []byte(hdrForwardedHost)
	strHTTP             = []byte("http")
)

// stripHopRequest removes hop-by-hop headers, including those the
// Connection header names, from a request about to be forwarded.
func stripHopRequest(h *fasthttp.RequestHeader, scratch *[]byte) {
	m := hopHeadersOf(h.All(), true)
	if m == 0 {
		return // the common case: one pass over the headers, no deletes
	}
	if m&hopConnection != 0 {
		*scratch = append((*scratch)[:0], h.Peek("Connection")...)
		forEachToken(*scratch, h.DelBytes)
	}
	for i, k := range hopHeaders {
		if m&(1<<i) != 0 {
			h.Del(k)
		}
	}
	if m&hopProxy != 0 {
		for _, k := range proxyKeys(h.All()) {
			h.DelBytes(k)
		}
	}
	if m&hopExpect != 0 {
		h.Del(hdrExpect) // the proxy has already answered 100-continue itself
	}
}

// stripHopResponse is stripHopRequest for responses. (The two are written
// out for each header type: sharing one body through an interface or a
// type parameter makes the header callbacks escape, six allocations per
// request.)
func stripHopResponse(h *fasthttp.ResponseHeader, scratch *[]byte) {
	m := hopHeadersOf(h.All(), false)
	if m == 0 {
		return
	}
	if m&hopConnection != 0 {
		*scratch = append((*scratch)[:0], h.Peek("Connection")...)
		forEachToken(*scratch, h.DelBytes)
	}
	for i, k := range hopHeaders {
		if m&(1<<i) != 0 {
			h.Del(k)
		}
	}
	if m&hopProxy != 0 {
		for _, k := range proxyKeys(h.All()) {
			h.DelBytes(k)
		}
	}
}

// hopHeadersOf tells, in one pass, which of the headers stripHopRequest
// (request) or stripHopResponse removes are present: the hop-by-hop ones,
// Proxy-* ones, and (request) Expect. (Headers named by Connection are
// found through Connection.)
func hopHeadersOf(all func(yield func(k, v []byte) bool), request bool) hopMask {
	var m hopMask
	all(func(k, _ []byte) bool {
		m |= hopKey(k, request)
		return true
	})
	return m
}

func hopKey(k []byte, request bool) hopMask {
	switch len(k) {
	case 2:
		if bytes.EqualFold(k, strTe) {
			return hopTe
		}
	case 6:
		if request && bytes.EqualFold(k, strExpect) {
			return hopExpect
		}
	case 7:
		switch {
		case bytes.EqualFold(k, strTrailer):
			return hopTrailer
		case bytes.EqualFold(k, strUpgrade):
			return hopUpgrade
		}
	case 10:
		switch {
		case bytes.EqualFold(k, strConnection):
			return hopConnection
		case bytes.EqualFold(k, strKeepAlive):
			return hopKeepAlive
		}
	case 17:
		if bytes.EqualFold(k, strTransferEncoding) {
			return hopTransferEncoding
		}
	}
	if len(k) > len(strProxyPrefix) && bytes.EqualFold(k[:len(strProxyPrefix)], strProxyPrefix) {
		return hopProxy
	}
	return 0
}

var (
	strTe               = []byte("Te")
	strExpect           = []byte(hdrExpect)
	strTrailer          = []byte("Trailer")
	strUpgrade          = []byte(hdrUpgrade)
	strConnection       = []byte("Connection")
	strKeepAlive        = []byte("Keep-Alive")
	strTransferEncoding = []byte("Transfer-Encoding")
)

// proxyKeys copies the names of Proxy-* headers (rare: allocation is fine).
func proxyKeys(all func(yield func(k, v []byte) bool)) [][]byte {
	var keys [][]byte
	all(func(k, _ []byte) bool {
		if len(k) > len(strProxyPrefix) && bytes.EqualFold(k[:len(strProxyPrefix)], strProxyPrefix) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return true
	})
	return keys
}

// forEachToken calls f with each comma-separated token of v, trimmed.
func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			f(tok)
		}
	}
}

// trusted reports whether addr is one of the trusted proxies.
func trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// setForwarded sets X-Forwarded-For/-Proto/-Host on a request from peer.
// From a trusted peer the incoming values are kept (For is appended to);
// from any other peer they are replaced. buf is scratch space; it returns
// the client IP as the proxy believes it (the right-most untrusted
// address), which aliases buf or ipbuf.
func setForwarded(h *fasthttp.RequestHeader, peer netip.Addr, trust []netip.Prefix, buf *[]byte, ipbuf []byte) []byte {
	peerIP := peer.AppendTo(ipbuf[:0])
	isTrusted := len(trust) > 0 && trusted(trust, peer)
	client := peerIP
	xff := h.Peek(hdrForwardedFor)
	if isTrusted && len(xff) > 0 {
		*buf = append(append(append((*buf)[:0], xff...), ", "...), peerIP...)
		h.SetCanonical(strForwardedFor, *buf)
		client = rightmostUntrusted(*buf, trust)
	} else {
		h.SetCanonical(strForwardedFor, peerIP)
	}
	if !isTrusted || len(h.Peek(hdrForwardedProto)) == 0 {
		h.SetCanonical(strForwardedProto, strHTTP)
	}
	if !isTrusted || len(h.Peek(hdrForwardedHost)) == 0 {
		h.SetCanonical(strForwardedHost, h.Host())
	}
	return client
}

// filterAddr returns the client address that a deployment's traffic
// filter is checked against: the peer, or, when the peer is a trusted
// proxy that sent X-Forwarded-For, the right-most address in it that is
// not a trusted proxy (the left-most when all are). A value that is not
// an address gives the zero Addr, which no filter allows.
func filterAddr(h *fasthttp.RequestHeader, peer netip.Addr, trust []netip.Prefix) netip.Addr {
	if len(trust) == 0 || !trusted(trust, peer) {
		return peer
	}
	xff := h.Peek(hdrForwardedFor)
	var last []byte
	for len(xff) > 0 {
		var tok []byte
		tok, xff = popLast(xff)
		if len(tok) == 0 {
			continue
		}
		a, err := netip.ParseAddr(stringOf(tok))
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !trusted(trust, a) {
			return a
		}
		last = tok
	}
	if last == nil {
		return peer // no X-Forwarded-For: the trusted peer is the client
	}
	a, _ := netip.ParseAddr(stringOf(last))
	return a.Unmap()
}

// popLast splits the last element, trimmed, off a comma-separated list.
func popLast(list []byte) (last, rest []byte) {
	i := bytes.LastIndexByte(list, ',')
	if i < 0 {
		return bytes.TrimSpace(list), nil
	}
	return bytes.TrimSpace(list[i+1:]), list[:i]
}

// rightmostUntrusted walks an X-Forwarded-For list from the right and
// returns the first address that is not a trusted proxy.
func rightmostUntrusted(list []byte, trust []netip.Prefix) []byte {
	for len(list) > 0 {
		var tok []byte
		tok, list = popLast(list)
		a, err := netip.ParseAddr(stringOf(tok))
		if err != nil || !trusted(trust, a.Unmap()) {
			return tok
		}
	}
	return nil
}

// stringOf returns b as a string without copying it, for a parser that
// keeps nothing of it (netip.ParseAddr: the Addr holds no reference, and
// its error, which does, is dropped at once). b must not change while the
// string is in use.
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytesOf returns the bytes of s without copying them, for fasthttp
// setters that copy the value they are given. They must not be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
