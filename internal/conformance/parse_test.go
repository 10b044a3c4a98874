package conformance

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	const h = "Host: x\r\n"
	for _, tc := range []struct {
		name, in string
		skipGET  bool
		body     string
		n        int // bytes taken; 0: all of in
	}{
		{name: "no body", in: "GET / HTTP/1.1\r\n" + h + "\r\n"},
		{name: "Content-Length", in: "POST /a?b HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello", body: "hello"},
		{name: "Content-Length 0", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n"},
		{name: "chunked", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;a=b;c=\"d e\"\r\n!\r\n0\r\nT: v\r\n\r\n", body: "hello!"},
		{name: "Chunked in other case, hex sizes", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", body: "0123456789"},
		{name: "stops at the end of the first", in: "GET / HTTP/1.1\r\n" + h + "\r\nGET /b HTTP/1.1\r\n", n: 27},
		{name: "value with tab, obs-text, trailing space", in: "GET / HTTP/1.1\r\n" + h + "V: a\tb\xff \r\n\r\n"},
		{name: "absolute form", in: "GET http://x/ HTTP/1.1\r\n" + h + "\r\n"},
		{name: "absolute form, other scheme", in: "GET a+b.c://x HTTP/1.1\r\n" + h + "\r\n"},
		{name: "asterisk for OPTIONS", in: "OPTIONS * HTTP/1.1\r\n" + h + "\r\n"},
		{name: "authority for CONNECT", in: "CONNECT x:443 HTTP/1.1\r\n" + h + "\r\n"},
		{name: "GET body left for the next request", in: "GET / HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc", skipGET: true, n: 46},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, n, err := Parse([]byte(tc.in), tc.skipGET)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tc.n
			if want == 0 {
				want = len(tc.in)
			}
			if n != want || string(r.Raw) != tc.in[:want] {
				t.Errorf("took %d bytes (%q); want %d", n, r.Raw, want)
			}
			if string(r.Body) != tc.body {
				t.Errorf("body %q; want %q", r.Body, tc.body)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	const h = "Host: x\r\n"
	for _, tc := range []struct{ name, in, reason string }{
		{"bare LF", "GET / HTTP/1.1\n" + h + "\r\n", "bare LF"},
		{"bare CR in a value", "GET / HTTP/1.1\r\n" + h + "V: a\rb\r\n\r\n", "bare CR"},
		{"empty line first", "\r\nGET / HTTP/1.1\r\n" + h + "\r\n", "request line"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + h + "\r\n", "version"},
		{"method not a token", "G(ET / HTTP/1.1\r\n" + h + "\r\n", "method"},
		{"two spaces", "GET  / HTTP/1.1\r\n" + h + "\r\n", "request line"},
		{"target not in a form", "GET x HTTP/1.1\r\n" + h + "\r\n", "target"},
		{"scheme not a scheme", "GET 1a:/ HTTP/1.1\r\n" + h + "\r\n", "target"},
		{"non-ASCII target", "GET /\xff HTTP/1.1\r\n" + h + "\r\n", "0xff"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "0 Host"},
		{"two Hosts", "GET / HTTP/1.1\r\n" + h + h + "\r\n", "2 Host"},
		{"fold", "GET / HTTP/1.1\r\n" + h + "V: a\r\n b\r\n\r\n", "folding"},
		{"space before colon", "GET / HTTP/1.1\r\n" + h + "V : a\r\n\r\n", "not a token"},
		{"no colon", "GET / HTTP/1.1\r\n" + h + "V\r\n\r\n", "no name"},
		{"NUL in a value", "GET / HTTP/1.1\r\n" + h + "V: a\x00b\r\n\r\n", "0x00"},
		{"both framings", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"},
		{"two lengths", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", "2 Content-Length"},
		{"length list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1, 1\r\n\r\nx", "decimal"},
		{"length with sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +1\r\n\r\nx", "decimal"},
		{"identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n", "want chunked"},
		{"two codings", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n", "want chunked"},
		{"chunked twice", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "2 Transfer-Encoding"},
		{"chunk size not hex", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nz\r\n", "chunk size"},
		{"chunk without CRLF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "CRLF"},
		{"bad chunk extension", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1;=\r\na\r\n0\r\n\r\n", "extension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.in), false)
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.Contains(se.Reason, tc.reason) {
				t.Errorf("Parse(%q) = %v; want a SyntaxError about %q", tc.in, err, tc.reason)
			}
		})
	}
}

// TestParseIncomplete checks that every proper prefix of a valid request
// is incomplete, not malformed.
func TestParseIncomplete(t *testing.T) {
	in := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n"
	for i := range len(in) {
		if _, _, err := Parse([]byte(in[:i]), false); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Parse(%q) = %v; want ErrIncomplete", in[:i], err)
		}
	}
	if _, n, err := Parse([]byte(in), false); err != nil || n != len(in) {
		t.Fatalf("Parse(all) = %d, %v; want %d, nil", n, err, len(in))
	}
}
