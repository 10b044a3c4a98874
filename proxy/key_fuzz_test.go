package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRouteKey feeds arbitrary X-Found-Cluster values, Host values and
// suffixes to routeKey. It must not panic or change its inputs; a key is
// nil or 1 to maxKeyLen bytes of a-z 0-9 . _ - written into dst; when the
// header is not blank the Host and suffix do not matter; and the result is
// what refRouteKey, the rules of docs/proxy.md written plainly, says.
func FuzzRouteKey(f *testing.F) {
	f.Add([]byte("prod-search.es"), []byte("other.example.test"), []byte(".example.test"))
	f.Add([]byte(""), []byte("ABC123.Example.TEST.:9200"), []byte(".example.test"))
	f.Add([]byte(" \t "), []byte("[::1]:9200"), []byte(".example.test"))
	f.Add([]byte("abc 123"), []byte("abc.example.test"), []byte(".example.test"))
	f.Add([]byte(strings.Repeat("a", maxKeyLen+1)), []byte(""), []byte(""))

	f.Fuzz(func(t *testing.T, header, host, suffix []byte) {
		in := [][]byte{bytes.Clone(header), bytes.Clone(host), bytes.Clone(suffix)}
		var buf [maxKeyLen]byte
		got := routeKey(buf[:], header, host, suffix)
		if !bytes.Equal(header, in[0]) || !bytes.Equal(host, in[1]) || !bytes.Equal(suffix, in[2]) {
			t.Fatal("routeKey changed its inputs")
		}

		if got != nil {
			if len(got) == 0 || len(got) > maxKeyLen {
				t.Fatalf("key %q has %d bytes; want 1 to %d", got, len(got), maxKeyLen)
			}
			if &got[0] != &buf[0] {
				t.Fatalf("key %q is not written into dst", got)
			}
			for _, c := range got {
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
					t.Fatalf("key %q holds byte %q", got, c)
				}
			}
		}

		if len(bytes.Trim(header, " \t")) > 0 {
			var other [maxKeyLen]byte
			if k := routeKey(other[:], header, []byte("zzz.other.test"), []byte(".other.test")); !sameRouteKey(k, got) {
				t.Fatalf("with header %q the key depends on the Host: %q, then %q", header, got, k)
			}
		}

		want, ok := refRouteKey(string(header), string(host), string(suffix))
		if ok != (got != nil) || string(got) != want {
			t.Fatalf("routeKey(%q, %q, %q) = %q (key %v); reference says %q (key %v)",
				header, host, suffix, got, got != nil, want, ok)
		}
	})
}

func sameRouteKey(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// refRouteKey is the route key rule of docs/proxy.md, written for clarity
// rather than speed: the X-Found-Cluster value trimmed of spaces and tabs
// (the white space of HTTP fields) wins when anything is left; else the Host, without ":port" (an IPv6 literal keeps it) and one
// trailing dot, must be longer than suffix and end with it, ignoring ASCII
// case, and the rest is the key. A key is at most 128 bytes of A-Z a-z 0-9
// . _ -, lowercased. A domain of one byte or none ("." or "") matches no
// Host.
func refRouteKey(header, host, suffix string) (string, bool) {
	if h := strings.Trim(header, " \t"); h != "" {
		return refKey(h)
	}
	if len(suffix) < 2 {
		return "", false
	}
	if !strings.HasPrefix(host, "[") {
		if i := strings.LastIndex(host, ":"); i >= 0 {
			host = host[:i]
		}
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) <= len(suffix) || refLower(host[len(host)-len(suffix):]) != suffix {
		return "", false
	}
	return refKey(host[:len(host)-len(suffix)])
}

func refKey(k string) (string, bool) {
	if len(k) > 128 {
		return "", false
	}
	for _, c := range []byte(k) {
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", rune(c)) {
			return "", false
		}
	}
	return refLower(k), true
}

// refLower lowercases A-Z only, as HTTP compares host names.
func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
