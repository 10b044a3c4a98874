package proxy

import (
	"bytes"

	"github.com/switchyard/switchyard/proxy/head"
)

// The headers whose copies scanRequest counts: a client may repeat each,
// and the proxy must read all copies as one value or list (RFC 9110 5.3)
// and forward exactly one.
const (
	cntForwardedFor = iota
	cntForwardedProto
	cntForwardedHost
	cntRequestID
	cntFoundCluster
	numCounted
)

// reqScan is what one pass over a request's header lines, as they came
// from the wire, finds: the headers stripHopRequest removes, how many
// copies of the counted headers there are (up to 2: "more than one" is all
// that matters), and the framing headers, including those fasthttp does
// not keep (Content-Length beside chunked, Transfer-Encoding: identity).
type reqScan struct {
	hop     hopMask
	n       [numCounted]uint8
	cl, te  bool // Content-Length, Transfer-Encoding present
	badName bool // a header name with a space in it
}

// scanRequest scans raw, the request's header block as received (fasthttp
// RawHeaders: one "name: value" line each, ending in CRLF; continuation
// lines of an obsolete fold begin with a space or a tab).
func scanRequest(raw []byte) reqScan {
	var sc reqScan
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || line[0] == '\r' {
			continue // the end, or the continuation of a folded value
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue // fasthttp refuses such lines before the handler runs
		}
		name := line[:colon]
		if bytes.IndexByte(name, ' ') >= 0 {
			// fasthttp accepts "Foo Bar: x" (and only a space of the bytes
			// a field name may not hold): a recipient may read it as
			// another header, or as none.
			sc.badName = true
			continue
		}
		sc.classify(name)
	}
	return sc
}

func (sc *reqScan) count(i int) {
	if sc.n[i] < 2 {
		sc.n[i]++
	}
}

// classify records one header name. The switch on the length keeps it to
// one or two comparisons per header.
func (sc *reqScan) classify(k []byte) {
	switch len(k) {
	case 14:
		if equalFoldASCII(k, strLowerContentLength) {
			sc.cl = true
			return
		}
	case 15:
		switch {
		case equalFoldASCII(k, strLowerForwardedFor):
			sc.count(cntForwardedFor)
			return
		case equalFoldASCII(k, strLowerFoundCluster):
			sc.count(cntFoundCluster)
			return
		}
	case 16:
		if equalFoldASCII(k, strLowerForwardedHost) {
			sc.count(cntForwardedHost)
			return
		}
	case 17:
		switch {
		case equalFoldASCII(k, strLowerTransferEncoding):
			sc.te = true
			sc.hop |= hopTransferEncoding
			return
		case equalFoldASCII(k, strLowerForwardedProto):
			sc.count(cntForwardedProto)
			return
		}
	case 18:
		if equalFoldASCII(k, strLowerRequestID) {
			sc.count(cntRequestID)
			return
		}
	}
	sc.hop |= hopKey(k, true)
}

var (
	strLowerContentLength    = []byte("content-length")
	strLowerTransferEncoding = []byte("transfer-encoding")
	strLowerForwardedFor     = []byte("x-forwarded-for")
	strLowerForwardedProto   = []byte("x-forwarded-proto")
	strLowerForwardedHost    = []byte("x-forwarded-host")
	strLowerRequestID        = []byte("x-cloud-request-id")
	strLowerFoundCluster     = []byte("x-found-cluster")
	strLowerHost             = []byte("host")
)

// framingError tells whether a request's framing or form is one the proxy
// refuses (400 and the connection closed), after fasthttp has parsed it.
// fasthttp already refuses two Content-Lengths, two Transfer-Encodings,
// a Transfer-Encoding other than chunked or identity, two Hosts, and
// names with bytes other than a space that a name may not hold.
func framingError(h *head.Request, sc *reqScan) bool {
	cl := h.ContentLength()
	switch {
	case sc.badName:
		return true
	case sc.te && cl != -1:
		// Transfer-Encoding: identity, which fasthttp drops: the body
		// would be read as the next request. Alone or beside a length.
		return true
	case sc.cl && cl == -1:
		// Both framings: which one the instance believes decides where
		// the next request begins.
		return true
	}
	return false
}

// sameValues reports whether every copy of the header named lower (its
// lowercase name) has the same value, trimmed and ignoring ASCII case.
// It runs only for requests that repeat the header.
func sameValues(h *head.Request, lower []byte) bool {
	var first []byte
	same, seen := true, false
	h.All()(func(k, v []byte) bool {
		if !equalFoldASCII(k, lower) {
			return true
		}
		v = bytes.Trim(v, " \t")
		if !seen {
			first, seen = v, true
			return true
		}
		if !bytes.EqualFold(v, first) {
			same = false
			return false
		}
		return true
	})
	return same
}

// joinValues appends every value of the header named lower, in order, to
// dst as one comma-separated list.
func joinValues(dst []byte, h *head.Request, lower []byte) []byte {
	n := len(dst)
	h.All()(func(k, v []byte) bool {
		if equalFoldASCII(k, lower) {
			if len(dst) > n {
				dst = append(dst, ", "...)
			}
			dst = append(dst, v...)
		}
		return true
	})
	return dst
}

// keepOne leaves exactly one copy of a header the client repeated: the
// first value, under its canonical name. scratch is reused for the copy.
func keepOne(h *head.Request, canonical []byte, scratch *[]byte) {
	*scratch = append((*scratch)[:0], h.PeekBytes(canonical)...)
	h.DelBytes(canonical)
	h.SetCanonical(canonical, *scratch)
}

// targetError checks the request line and the Host. The version must be
// HTTP/1.1 or HTTP/1.0, and the request must name a Host: the instance is
// spoken to in HTTP/1.1, which requires one, and the proxy routes by it.
// The target may hold only the printable ASCII bytes of a URI, without a
// fragment ('#'): an instance may decode others differently from the
// proxy. The origin form ("/path") is what clients send; the asterisk form
// is OPTIONS's. The absolute form ("http://host/path", RFC 9112 3.2.2) is
// accepted when its authority is the Host header, as the RFC requires of
// clients, and is sent on in the origin form, so that the instance cannot
// route by another name than the one the proxy routed by; any other
// absolute form gets 400. It returns true when the request must be
// refused.
func targetError(h *head.Request) bool {
	if p := h.Protocol(); len(p) != len("HTTP/1.1") || !bytes.HasPrefix(p, strHTTP1) || (p[7] != '1' && p[7] != '0') {
		return true
	}
	if len(h.Host()) == 0 {
		return true
	}
	uri := h.RequestURI()
	for _, c := range uri {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return true
		}
	}
	if len(uri) > 0 && uri[0] == '/' {
		return false
	}
	if len(uri) == 1 && uri[0] == '*' {
		return false // fasthttp accepts it only with OPTIONS
	}
	rest, ok := cutScheme(uri)
	if !ok {
		return true
	}
	authority := rest
	path := []byte(nil)
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 || !bytes.EqualFold(authority, h.Host()) {
		return true
	}
	switch {
	case len(path) == 0:
		h.SetRequestURI("/")
	case path[0] == '/':
		h.SetRequestURIBytes(path)
	default: // "http://host?q"
		h.SetRequestURIBytes(append([]byte{'/'}, path...))
	}
	return false
}

var strHTTP1 = []byte("HTTP/1.")

// cutScheme removes "http://" or "https://" (any case) from an absolute
// request target.
func cutScheme(uri []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(uri) >= len(s) && bytes.EqualFold(uri[:len(s)], []byte(s)) {
			return uri[len(s):], true
		}
	}
	return nil, false
}
