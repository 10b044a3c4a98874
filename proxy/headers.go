package proxy

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/switchyard/switchyard/proxy/head"
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
	hopOwn    // responses only: a header the proxy sets itself
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
	strAltSvc           = []byte("Alt-Svc")
	strRequestID        = []byte(hdrRequestID)
	strHandlingCluster  = []byte(hdrHandlingCluster)
	strHandlingInstance = []byte(hdrHandlingInstance)
	strForwardedFor     = []byte(hdrForwardedFor)
	strForwardedProto   = []byte(hdrForwardedProto)
	strForwardedHost    = []byte(hdrForwardedHost)
	strFoundCluster     = []byte(hdrFoundCluster)
	strHTTP             = []byte("http")
	strHTTPS            = []byte("https")
)

// stripHopRequest removes hop-by-hop headers, including those the
// Connection header names (but never one of protectedRequest), from a
// request about to be forwarded. m says which are present (reqScan.hop).
func stripHopRequest(h *head.Request, m hopMask, scratch *[]byte) {
	if m == 0 {
		return // the common case: no deletes
	}
	if m&hopConnection != 0 {
		*scratch = append((*scratch)[:0], h.Peek("Connection")...)
		forEachToken(*scratch, func(k []byte) {
			if !protected(k, protectedRequest) {
				h.DelBytes(k)
			}
		})
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

// The headers that a Connection header cannot make hop-by-hop: framing,
// the Host the request was routed by, and the headers the proxy sets
// itself (a client naming them would only remove the trusted hop's
// values). Lowercase.
var (
	protectedRequest = [][]byte{
		[]byte("host"), []byte("content-length"), []byte("transfer-encoding"),
		[]byte("x-forwarded-for"), []byte("x-forwarded-proto"), []byte("x-forwarded-host"),
		[]byte("x-cloud-request-id"), []byte("x-found-cluster"),
	}
	protectedResponse = [][]byte{
		[]byte("content-length"), []byte("transfer-encoding"), []byte("content-type"),
		[]byte("x-cloud-request-id"), []byte("x-found-handling-cluster"), []byte("x-found-handling-instance"),
	}
)

func protected(k []byte, list [][]byte) bool {
	for _, p := range list {
		if equalFoldASCII(k, p) {
			return true
		}
	}
	return false
}

// stripHopResponse is stripHopRequest for responses. (The two are written
// out for each header type: sharing one body through an interface or a
// type parameter makes the header callbacks escape, six allocations per
// request.)
func stripHopResponse(h *head.Response, scratch *[]byte) {
	m := hopHeadersOf(h.All(), false)
	if m == 0 {
		return
	}
	if m&hopConnection != 0 {
		*scratch = append((*scratch)[:0], h.Peek("Connection")...)
		forEachToken(*scratch, func(k []byte) {
			if !protected(k, protectedResponse) {
				h.DelBytes(k)
			}
		})
	}
	if m&hopOwn != 0 {
		// The instance sent headers the proxy sets: every copy goes, so
		// that the client sees the proxy's one value.
		h.Del(hdrRequestID)
		h.Del(hdrHandlingCluster)
		h.Del(hdrHandlingInstance)
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
	case 18:
		if !request && bytes.EqualFold(k, strRequestID) {
			return hopOwn
		}
	case 24:
		if !request && bytes.EqualFold(k, strHandlingCluster) {
			return hopOwn
		}
	case 25:
		if !request && bytes.EqualFold(k, strHandlingInstance) {
			return hopOwn
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

// clientAddr is the request's client as the proxy believes it, found once
// per request (clientOf) and used by the traffic filter, the forwarded
// headers and the access log alike.
type clientAddr struct {
	addr netip.Addr // the zero Addr when the entry that names it is not an address
	text []byte     // addr as text, or the entry as sent when it is not one
	// trusted: the peer is one of the trusted proxies; its X-Forwarded-*
	// headers are taken.
	trusted bool
	// xff is the X-Forwarded-For to send on: every incoming line, in
	// order, as one list, and the peer appended; nil when the peer is not
	// trusted or sent none (the header is then the peer alone).
	xff []byte
}

// clientOf finds the client of a request from peer: the peer, unless the
// peer is a trusted proxy that sent X-Forwarded-For; then the right-most
// address of the list (all its lines, RFC 9110 5.3) that is not a trusted
// proxy, or the left-most when all are. An entry there that is not an
// address gives the zero Addr, which no filter allows: a filter does not
// guess. buf and ipbuf are scratch space that the result aliases.
func clientOf(h *head.Request, sc *reqScan, peer netip.Addr, trust []netip.Prefix, buf *[]byte, ipbuf []byte) clientAddr {
	c := clientAddr{addr: peer, text: peer.AppendTo(ipbuf[:0])}
	if len(trust) == 0 || !trusted(trust, peer) {
		return c
	}
	c.trusted = true
	switch sc.n[cntForwardedFor] {
	case 0:
		return c // the trusted peer is the client
	case 1:
		*buf = append((*buf)[:0], h.PeekBytes(strForwardedFor)...)
	default:
		*buf = joinValues((*buf)[:0], h, strLowerForwardedFor)
	}
	if len(bytes.TrimSpace(*buf)) == 0 {
		return c // an empty header: as none
	}
	// The list to send on, the peer appended. Walking it from the right
	// passes the peer first, which is trusted.
	*buf = peer.AppendTo(append(*buf, ", "...))
	c.xff = *buf
	var last []byte
	for rest := c.xff; len(rest) > 0; {
		var tok []byte
		tok, rest = popLast(rest)
		if len(tok) == 0 {
			continue
		}
		a, err := netip.ParseAddr(stringOf(tok))
		if err != nil {
			c.addr, c.text = netip.Addr{}, tok
			return c
		}
		if a = a.Unmap(); !trusted(trust, a) {
			c.addr, c.text = a, tok
			return c
		}
		last = tok
	}
	if last == nil {
		return c // no entries: the trusted peer is the client
	}
	a, _ := netip.ParseAddr(stringOf(last))
	c.addr, c.text = a.Unmap(), last
	return c
}

// setForwarded sets X-Forwarded-For/-Proto/-Host on a request from c's
// peer: from a trusted peer the incoming values are kept (For is appended
// to, every line in one), from any other peer every copy is replaced by
// the proxy's one. ipbuf holds the peer's address as text.
func setForwarded(h *head.Request, sc *reqScan, c *clientAddr, peer netip.Addr, tls bool, ipbuf []byte) {
	if sc.n[cntForwardedFor] > 1 {
		h.DelBytes(strForwardedFor)
	}
	if c.xff != nil {
		h.SetCanonical(strForwardedFor, c.xff)
	} else {
		h.SetCanonical(strForwardedFor, peer.AppendTo(ipbuf[:0]))
	}
	// A trusted hop's one value is kept; two are no value, and the proxy's
	// replaces them.
	if n := sc.n[cntForwardedProto]; !c.trusted || n != 1 || len(h.PeekBytes(strForwardedProto)) == 0 {
		if n > 1 {
			h.DelBytes(strForwardedProto)
		}
		proto := strHTTP
		if tls {
			proto = strHTTPS
		}
		h.SetCanonical(strForwardedProto, proto)
	}
	if n := sc.n[cntForwardedHost]; !c.trusted || n != 1 || len(h.PeekBytes(strForwardedHost)) == 0 {
		if n > 1 {
			h.DelBytes(strForwardedHost)
		}
		h.SetCanonical(strForwardedHost, h.Host())
	}
}

// popLast splits the last element, trimmed, off a comma-separated list.
func popLast(list []byte) (last, rest []byte) {
	i := bytes.LastIndexByte(list, ',')
	if i < 0 {
		return bytes.TrimSpace(list), nil
	}
	return bytes.TrimSpace(list[i+1:]), list[:i]
}

// stringOf returns b as a string without copying it, for a parser that
// keeps nothing of it (netip.ParseAddr: the Addr holds no reference, and
// its error, which does, is dropped at once). b must not change while the
// string is in use.
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytesOf returns the bytes of s without copying them, for fasthttp
// setters that copy the value they are given. They must not be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
