package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 9110 7.6.1) and the headers a proxy must not
// pass on. Proxy-* are matched by prefix.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
}

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
	strRequestID      = []byte(hdrRequestID)
	strForwardedFor   = []byte(hdrForwardedFor)
	strForwardedProto = []byte(hdrForwardedProto)
	strForwardedHost  = []byte(hdrForwardedHost)
	strHTTP           = []byte("http")
)

// stripHopRequest removes hop-by-hop headers, including those the
// Connection header names, from a request about to be forwarded.
func stripHopRequest(h *fasthttp.RequestHeader, scratch *[]byte) {
	if !hasHopHeader(h.All(), true) {
		return // the common case: one pass over the headers, no deletes
	}
	if conn := h.Peek("Connection"); len(conn) > 0 {
		*scratch = append((*scratch)[:0], conn...)
		forEachToken(*scratch, h.DelBytes)
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if hasProxyPrefix(h.All()) {
		for _, k := range proxyKeys(h.All(), scratch) {
			h.DelBytes(k)
		}
	}
	h.Del(hdrExpect) // the proxy has already answered 100-continue itself
}

// stripHopResponse is stripHopRequest for responses.
func stripHopResponse(h *fasthttp.ResponseHeader, scratch *[]byte) {
	if !hasHopHeader(h.All(), false) {
		return
	}
	if conn := h.Peek("Connection"); len(conn) > 0 {
		*scratch = append((*scratch)[:0], conn...)
		forEachToken(*scratch, h.DelBytes)
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if hasProxyPrefix(h.All()) {
		for _, k := range proxyKeys(h.All(), scratch) {
			h.DelBytes(k)
		}
	}
}

// hasHopHeader reports whether a header stripHopRequest (request) or
// stripHopResponse removes is present: a hop-by-hop header, a Proxy-*
// one, or (request) Expect. Headers named by Connection need Connection.
func hasHopHeader(all func(yield func(k, v []byte) bool), request bool) bool {
	found := false
	all(func(k, _ []byte) bool {
		found = isHopKey(k, request)
		return !found
	})
	return found
}

func isHopKey(k []byte, request bool) bool {
	switch len(k) {
	case 2:
		return bytes.EqualFold(k, strTe)
	case 6:
		return request && bytes.EqualFold(k, strExpect)
	case 7:
		return bytes.EqualFold(k, strTrailer) || bytes.EqualFold(k, strUpgrade)
	case 10:
		return bytes.EqualFold(k, strConnection) || bytes.EqualFold(k, strKeepAlive)
	case 17:
		return bytes.EqualFold(k, strTransferEncoding)
	}
	return len(k) > len(strProxyPrefix) && bytes.EqualFold(k[:len(strProxyPrefix)], strProxyPrefix)
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

func hasProxyPrefix(all func(yield func(k, v []byte) bool)) bool {
	found := false
	all(func(k, _ []byte) bool {
		if len(k) > len(strProxyPrefix) && bytes.EqualFold(k[:len(strProxyPrefix)], strProxyPrefix) {
			found = true
			return false
		}
		return true
	})
	return found
}

// proxyKeys copies the names of Proxy-* headers (rare: allocation is fine).
func proxyKeys(all func(yield func(k, v []byte) bool), _ *[]byte) [][]byte {
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

// rightmostUntrusted walks an X-Forwarded-For list from the right and
// returns the first address that is not a trusted proxy.
func rightmostUntrusted(list []byte, trust []netip.Prefix) []byte {
	for len(list) > 0 {
		i := bytes.LastIndexByte(list, ',')
		tok := bytes.TrimSpace(list[i+1:])
		if i < 0 {
			list = nil
		} else {
			list = list[:i]
		}
		a, err := netip.ParseAddr(string(tok))
		if err != nil || !trusted(trust, a.Unmap()) {
			return tok
		}
	}
	return nil
}
