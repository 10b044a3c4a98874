package upstream

import (
	"bufio"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/proxy/head"
)

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		in  string
		end int // 0: not all there yet
		ok  bool
	}{
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", 25, true},
		{"HTTP/1.1 200 OK\r\n\r\n", 19, true},
		{"HTTP/1.1 200\r\n\r\n", 16, true},
		{"HTTP/1.1 200 OK\nA: b\n\nbody", 22, true},
		{"HTTP/1.1 200 OK\nA: b\n\r\nbody", 23, true},
		{"HTTP/1.1 200 OK\r\nA: b\n\n\r\n\r\n", 23, true}, // the bare blank line comes first
		{"\r\n\nHTTP/1.1 200 OK\r\n\r\n", 22, true},       // blank lines before: skipped
		{"HTTP/1.1 200 OK\r\nA: b\r\n", 0, true},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r", 0, true},
		{"HTTP/1.1 200 O", 0, true},
		{"", 0, true},
		{"\r", 0, true},
		{"\rx\n", 0, false}, // a line starting with CR that is not a CRLF
		{"garbage\r\n", 0, false},
		{"HTTP/1.1 2000 OK\r\n", 0, false},
		{"HTTP/1.1 20 OK\r\n", 0, false},
		{"HTTP/1.1  200 OK\r\n\r\n", 20, true}, // fasthttp takes spaces before the code
		{"HTTP/11 200 OK\r\n", 0, false},
		{"http/1.1 200 OK\r\n", 0, false},
		{"HTTP/1.1 2x0 OK\r\n", 0, false},
	}
	for _, tt := range tests {
		end, ok := headEnd([]byte(tt.in))
		if end != tt.end || ok != tt.ok {
			t.Errorf("headEnd(%q) = %d, %v; want %d, %v", tt.in, end, ok, tt.end, tt.ok)
		}
	}
}

func TestReadHeadFraming(t *testing.T) {
	tests := []struct {
		head      string
		cl        int // the ResponseHeader's ContentLength
		ambiguous bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 2, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -1, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", -1, true},
		{"HTTP/1.1 200 OK\r\nCONTENT-LENGTH : 2\r\nTransfer-Encoding: chunked\r\n\r\n", -1, true},
		{"HTTP/1.1 200 OK\nContent-Length: 2\nTransfer-Encoding: chunked\n\n", -1, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Content-Length: 2\r\n\r\n", -1, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: a\r\n Content-Length: 2\r\n\r\n", -1, false}, // a folded value
		{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 2, false},
		{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", 2, true},
		{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -2, true},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.head + "body"))
		var rh head.Response
		ambiguous, err := readHead(br, &rh)
		if err != nil {
			t.Errorf("readHead(%q): %v", tt.head, err)
			continue
		}
		if rh.ContentLength() != tt.cl || ambiguous != tt.ambiguous {
			t.Errorf("readHead(%q): content length %d, ambiguous %v; want %d, %v",
				tt.head, rh.ContentLength(), ambiguous, tt.cl, tt.ambiguous)
		}
		if rest, _ := br.Peek(br.Buffered()); string(rest) != "body" {
			t.Errorf("readHead(%q) left %q; want the body", tt.head, rest)
		}
	}
}
