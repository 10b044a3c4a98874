package proxy

import "bytes"

// maxKeyLen bounds route keys; longer keys are unknown.
const maxKeyLen = 128

// routeKey finds the route key of a request and writes it, lowercased, into
// dst (which must hold maxKeyLen bytes). The X-Found-Cluster header wins;
// otherwise the Host must be "<key>.<domain>" (port and a trailing dot are
// ignored). The header is trimmed of spaces and tabs only (the white
// space of HTTP fields): any other byte, Unicode spaces included, makes it
// no key. suffix is "." + domain, lowercase. It returns nil when the
// request has no usable key.
func routeKey(dst, header, host, suffix []byte) []byte {
	if header = bytes.Trim(header, " \t"); len(header) > 0 {
		return lowerKey(dst, header)
	}
	if len(suffix) < 2 {
		return nil
	}
	host = stripPort(host)
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) <= len(suffix) {
		return nil
	}
	cut := len(host) - len(suffix)
	if !equalFoldASCII(host[cut:], suffix) {
		return nil
	}
	return lowerKey(dst, host[:cut])
}

// stripPort removes ":port" from a Host value. IPv6 literals keep their
// brackets and never match a domain.
func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

// lowerKey copies a key into dst lowercased, or returns nil when it is too
// long or holds a byte that no key can have.
func lowerKey(dst, key []byte) []byte {
	if len(key) > maxKeyLen || len(key) > len(dst) {
		return nil
	}
	for i, c := range key {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return nil
		}
		dst[i] = c
	}
	return dst[:len(key)]
}

// equalFoldASCII compares s with the lowercase want, ignoring ASCII case.
func equalFoldASCII(s, want []byte) bool {
	if len(s) != len(want) {
		return false
	}
	for i, c := range s {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}
