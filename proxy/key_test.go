package proxy

import "testing"

func TestRouteKey(t *testing.T) {
	suffix := []byte(".example.test")
	tests := []struct {
		name, header, host string
		want               string // "" means no key
	}{
		{"header wins over host", "abc123", "other.example.test", "abc123"},
		{"header lowercased", "ABC123", "", "abc123"},
		{"header trimmed", "  abc123 ", "", "abc123"},
		{"header alias form", "Prod-Search.ES", "", "prod-search.es"},
		{"host id", "", "abc123.example.test", "abc123"},
		{"host case", "", "ABC123.Example.TEST", "abc123"},
		{"host port ignored", "", "abc123.example.test:9200", "abc123"},
		{"host trailing dot", "", "abc123.example.test.", "abc123"},
		{"host trailing dot and port", "", "abc123.example.test.:443", "abc123"},
		{"host alias", "", "prod-search.es.example.test", "prod-search.es"},
		{"host is the domain", "", "example.test", ""},
		{"host dot domain", "", ".example.test", ""},
		{"other domain", "", "abc123.example.org", ""},
		{"suffix without dot", "", "abc123example.test", ""},
		{"empty host", "", "", ""},
		{"ipv6 literal", "", "[::1]:9200", ""},
		{"ip host", "", "127.0.0.1:9200", ""},
		{"bad byte in header", "abc 123", "", ""},
		{"bad byte in host", "", "a/b.example.test", ""},
		{"slash in header", "abc/../x", "", ""},
		{"too long", string(make([]byte, maxKeyLen+1)), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [maxKeyLen]byte
			got := routeKey(buf[:], []byte(tt.header), []byte(tt.host), suffix)
			if string(got) != tt.want || (tt.want == "" && got != nil) {
				t.Errorf("routeKey(%q, %q) = %q; want %q", tt.header, tt.host, got, tt.want)
			}
		})
	}
}

func TestRouteKeyNoDomain(t *testing.T) {
	var buf [maxKeyLen]byte
	if got := routeKey(buf[:], nil, []byte("abc.example.test"), nil); got != nil {
		t.Errorf("host key without a domain = %q; want none", got)
	}
	if got := routeKey(buf[:], []byte("abc"), nil, nil); string(got) != "abc" {
		t.Errorf("header key without a domain = %q; want abc", got)
	}
}
