package conformance

import (
	"fmt"
	"strings"
)

// shape is a request shape: raw bytes a client sends, and what Switchyard
// must make of them.
type shape struct {
	name string
	raw  string
	// refuse is the status Switchyard must answer with, itself, sending
	// nothing to the instance; 0: the shape is forwarded.
	refuse int
	// stricter says why Switchyard may refuse a shape that HAProxy
	// forwards. A refused shape that HAProxy forwards needs one.
	stricter string
	// record: no expectation beyond the invariants (a refusal is a 4xx
	// with a JSON body, what is forwarded is well-framed, and a shape
	// HAProxy refuses is refused); the table shows what happens.
	record bool

	// For a forwarded shape: the X-Marker values of the requests the
	// instance must see and answer, in order (default "a").
	markers []string
	// closes: the proxy closes the client connection after answering.
	closes bool
	// check looks at each forwarded request as the instance saw it and
	// says what is wrong, or "".
	check func(q *Request) string
	// lax: the instance never reads a GET's body.
	lax bool
	// next is a request a second client sends after the first exchange;
	// it must get the answer to its own request (marker "next").
	next string
}

// head joins a request line and field lines with CRLF and ends the head.
func head(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

const (
	hostLine = "Host: " + testHost
	marker   = HeaderMarker + ": a"
	chunked  = "5\r\nhello\r\n0\r\n\r\n"
)

// Reasons for refusing what HAProxy forwards.
const (
	whyRepeatedLength = "docs/proxy.md refuses every repeated Content-Length; RFC 9110 8.6 lets a recipient reject it or merge equal values (HAProxy merges), and a hop that reads a list differently frames the body differently"
	whyBothFramings   = "RFC 9112 6.1 lets a server reject a request with both framings, or go by Transfer-Encoding and close the connection after it (HAProxy); an instance that believes the length would read another body"
	whyCodings        = "only chunked is a framing the proxy can forward; RFC 9112 6.1 asks 501 for a coding the server does not understand, and the proxy refuses it as an ambiguous framing (docs/proxy.md) rather than pass a body the instance may not decode"
	whyLeadingSpace   = "RFC 9112 2.2: white space between the start line and the first field line must be refused, or the line ignored; a hop that reads it as a fold of the start line sees another request"
	whyBareLF         = "the request parser ends a head only at CRLFCRLF: a head whose lines all end in a bare LF never ends, and gets 408 after --client-header-timeout with nothing forwarded; RFC 9112 2.2 lets a recipient accept a bare LF, and does not require it"
	whyCTL            = "RFC 9110 5.5: a value holding NUL, CR or LF must be refused or those bytes replaced, and other control bytes are no field content either; the proxy refuses them all rather than rewrite a value"
	whyAuthority      = "RFC 9112 3.2.2 makes the target's authority win over Host, so a hop routing by Host and one following the RFC reach different deployments; the proxy refuses the disagreement"
	whyRouteKey       = "two route keys naming different deployments: which one counts would be a guess, and a hop reading the last copy routes elsewhere"
	whyConnect        = "Switchyard is a reverse proxy and opens no tunnels: a 2xx from the instance would turn the client connection into one"
	whyHTTP10Host     = "the proxy forwards every request as HTTP/1.1, which must carry a Host (RFC 9112 3.2), and an HTTP/1.0 request without one gives it none to send"
	whyHost           = "RFC 9112 3.2: a server must answer 400 to an HTTP/1.1 request without a Host or with more than one"
)

// body returns a check that the forwarded body is want.
func body(want string) func(*Request) string {
	return func(q *Request) string {
		if string(q.Body) != want {
			return fmt.Sprintf("instance got body %q; want %q", q.Body, want)
		}
		return ""
	}
}

// target returns a check that the forwarded request target is want.
func target(want string) func(*Request) string {
	return func(q *Request) string {
		if q.Target != want {
			return fmt.Sprintf("instance got target %q; want %q", q.Target, want)
		}
		return ""
	}
}

// once returns a check that the instance saw the header name exactly once,
// with value want.
func once(name, want string) func(*Request) string {
	return func(q *Request) string {
		if got := q.Values(name); len(got) != 1 || got[0] != want {
			return fmt.Sprintf("instance got %s %q; want [%q]", name, got, want)
		}
		return ""
	}
}

var shapes = []shape{
	// Baselines: what must go through.
	{name: "GET", raw: head("GET /a?b=c HTTP/1.1", hostLine, marker), check: target("/a?b=c")},
	{name: "POST with Content-Length", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 5") + "hello", check: body("hello")},
	{name: "POST chunked", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked") + chunked, check: body("hello")},
	{name: "Transfer-Encoding: Chunked, in other case", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: Chunked") + chunked, check: body("hello")},
	{name: "two pipelined GETs", raw: head("GET /a HTTP/1.1", hostLine, marker) + head("GET /b HTTP/1.1", hostLine, HeaderMarker+": b"), markers: []string{"a", "b"}},
	{name: "empty line before the request line", raw: "\r\n" + head("GET /a HTTP/1.1", hostLine, marker), check: target("/a")},
	{name: "bare LF line endings", raw: "GET /a HTTP/1.1\n" + hostLine + "\n" + marker + "\n\n", refuse: 408, stricter: whyBareLF},
	{name: "absolute-form target, same authority", raw: head("GET http://"+testHost+"/a HTTP/1.1", hostLine, marker), check: target("/a")},

	// Content-Length.
	{name: "Content-Length twice, same value", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 5", "Content-Length: 5") + "hello", refuse: 400, stricter: whyRepeatedLength},
	{name: "Content-Length twice, different values", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 5", "Content-Length: 6") + "hello!", refuse: 400, stricter: whyRepeatedLength},
	{name: "Content-Length list", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 5, 5") + "hello", refuse: 400, stricter: whyRepeatedLength},
	{name: "Content-Length negative", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: -1"), refuse: 400},
	{name: "Content-Length with a plus sign", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: +5") + "hello", refuse: 400},

	// Both framings.
	{name: "Content-Length then Transfer-Encoding: chunked", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 15", "Transfer-Encoding: chunked") + chunked, refuse: 400, stricter: whyBothFramings},
	{name: "Transfer-Encoding: chunked then Content-Length", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked", "Content-Length: 15") + chunked, refuse: 400, stricter: whyBothFramings},

	{name: "Content-Length over 64 bits", raw: head("POST /a HTTP/1.1", hostLine, marker, "Content-Length: 18446744073709551621") + "hello", refuse: 400},

	// Transfer-Encoding.
	{name: "Transfer-Encoding: identity", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: identity"), refuse: 400, stricter: whyCodings},
	{name: "Transfer-Encoding: identity with Content-Length", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: identity", "Content-Length: 5") + "hello", refuse: 400, stricter: whyCodings},
	{name: "Transfer-Encoding: gzip, chunked", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: gzip, chunked") + chunked, refuse: 400, stricter: whyCodings},
	{name: "Transfer-Encoding: chunked, gzip", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked, gzip") + chunked, refuse: 400, stricter: whyCodings},
	{name: "Transfer-Encoding: chunked twice", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked", "Transfer-Encoding: chunked") + chunked, refuse: 400, stricter: whyCodings},
	{name: "Transfer-Encoding: xchunked", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: xchunked") + chunked, refuse: 400, stricter: whyCodings},
	{name: "chunk size over 64 bits", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked") + "10000000000000005\r\nhello\r\n0\r\n\r\n", refuse: 400},
	{name: "chunk size with a 0x prefix", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked") + "0x5\r\nhello\r\n0\r\n\r\n", refuse: 400},
	{name: "bare LF in chunked framing", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding: chunked") + "5\nhello\n0\n\n", record: true},
	{name: "Transfer-Encoding with a space before the colon", raw: head("POST /a HTTP/1.1", hostLine, marker, "Transfer-Encoding : chunked") + chunked, refuse: 400},

	// Field syntax.
	{name: "obs-fold continuation line", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Folded: one", " two"), check: once("X-Folded", "one two")},
	{name: "white space before the first field", raw: head("GET /a HTTP/1.1", " X-Lead: a", hostLine, marker), refuse: 400, stricter: whyLeadingSpace},
	{name: "field name with a space", raw: head("GET /a HTTP/1.1", hostLine, marker, "Foo Bar: x"), refuse: 400},
	{name: "space before the colon", raw: head("GET /a HTTP/1.1", hostLine, marker, "Foo : x"), refuse: 400},
	{name: "field line without a colon", raw: head("GET /a HTTP/1.1", hostLine, marker, "Foo"), refuse: 400},
	{name: "empty field name", raw: head("GET /a HTTP/1.1", hostLine, marker, ": x"), refuse: 400},
	{name: "NUL in a field value", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Ctl: a\x00b"), refuse: 400, stricter: whyCTL},
	{name: "control byte in a field value", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Ctl: a\x01b"), refuse: 400, stricter: whyCTL},
	{name: "bare CR in a field value", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Ctl: a\rb"), refuse: 400, stricter: whyCTL},

	// Request line.
	{name: "invalid method token", raw: head("G(ET /a HTTP/1.1", hostLine, marker), refuse: 400},
	{name: "HTTP/2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", refuse: 400},
	{name: "target in no form", raw: head("GET a HTTP/1.1", hostLine, marker), refuse: 400},
	{name: "non-ASCII byte in the target", raw: head("GET /\xff HTTP/1.1", hostLine, marker), refuse: 400},
	{name: "CONNECT", raw: head("CONNECT "+testHost+":443 HTTP/1.1", "Host: "+testHost+":443", marker), refuse: 405, stricter: whyConnect},
	{name: "absolute-form target, other authority", raw: head("GET http://other.example.test/a HTTP/1.1", hostLine, marker), refuse: 400, stricter: whyAuthority},

	// Host and route key.
	{name: "Host twice, same value", raw: head("GET /a HTTP/1.1", hostLine, hostLine, marker), refuse: 400, stricter: whyHost},
	{name: "Host twice, different values", raw: head("GET /a HTTP/1.1", hostLine, "Host: other.es.example.test", marker), refuse: 400, stricter: whyHost},
	{name: "Host missing", raw: head("GET /a HTTP/1.1", "X-Found-Cluster: app.es", marker), refuse: 400, stricter: whyHost},
	{name: "HTTP/1.0 without Host", raw: head("GET /a HTTP/1.0", "X-Found-Cluster: app.es", marker), refuse: 400, stricter: whyHTTP10Host},
	{name: "X-Found-Cluster twice, same value", raw: head("GET /a HTTP/1.1", hostLine, "X-Found-Cluster: app.es", "X-Found-Cluster: app.es", marker), check: once("X-Found-Cluster", "app.es")},
	{name: "X-Found-Cluster twice, different values", raw: head("GET /a HTTP/1.1", hostLine, "X-Found-Cluster: app.es", "X-Found-Cluster: other.es", marker), refuse: 400, stricter: whyRouteKey},

	// Connections and the headers the proxy sets.
	{name: "Connection: close, then more bytes", raw: head("GET /a HTTP/1.1", hostLine, marker, "Connection: close") + head("GET /smuggled HTTP/1.1", hostLine, HeaderMarker+": smuggled"), closes: true},
	{name: "Connection names Host and X-Forwarded-Host", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Forwarded-Host: evil.example", "Connection: Host, X-Forwarded-Host")},
	{name: "X-Forwarded-For twice", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Forwarded-For: 203.0.113.1", "X-Forwarded-For: 198.51.100.2")},
	{name: "X-Cloud-Request-Id twice", raw: head("GET /a HTTP/1.1", hostLine, marker, "X-Cloud-Request-Id: 0123456789abcdef0123456789abcdef", "X-Cloud-Request-Id: fedcba9876543210fedcba9876543210")},
	{
		// A lax instance answers the request hidden in the body too; that
		// answer must reach no client.
		name: "GET with a body holding a second request, lax instance",
		raw:  getWithRequestInBody,
		lax:  true,
		next: head("GET /next HTTP/1.1", hostLine, HeaderMarker+": next"),
	},

	// Paths the proxy may read as its own health check.
	{name: "path /x/../_health", raw: head("GET /x/../_health HTTP/1.1", hostLine, marker), record: true},
	{name: "path //_health", raw: head("GET //_health HTTP/1.1", hostLine, marker), record: true},
	{name: "path /%5Fhealth", raw: head("GET /%5Fhealth HTTP/1.1", hostLine, marker), record: true},
}

var smuggled = head("GET /smuggled HTTP/1.1", hostLine, HeaderMarker+": smuggled")

var getWithRequestInBody = head("GET /a HTTP/1.1", hostLine, marker, fmt.Sprintf("Content-Length: %d", len(smuggled))) + smuggled

// knownFailing lists the shapes Switchyard does not handle as the table
// says yet. TestRequestShapes logs their failures instead of reporting
// them, and says when one passes; FuzzRequestPath does the same for their
// seeds. Remove a shape from here when the proxy handles it.
var knownFailing = []string{}
