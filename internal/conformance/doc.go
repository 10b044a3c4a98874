// Package conformance checks what the proxy makes of requests at the edge
// of HTTP/1.1: malformed, ambiguous and hostile shapes sent as raw bytes
// to a real listener, against what a recording instance behind it
// receives.
//
// # The recording instance
//
// An Instance is a raw TCP server that keeps every byte it receives and
// parses each connection strictly (Parse: CRLF lines, one Host, exactly
// one framing, no folding) as a sequence of requests. It answers each
// request with a body naming it (its sequence number and the X-Marker
// header the test put in), and keeps what it cannot attribute to a
// well-framed request as a Fault. With Options.IgnoreGETBodies it reads
// like a lax backend that never reads a GET's body, so that bytes hidden
// in a body become a request of their own.
//
// # Tests
//
// TestRequestShapes sends a table of request shapes to Switchyard and to
// HAProxy, each in front of its own instance, and checks Switchyard's
// answer and what its instance saw against the table; where HAProxy
// forwards nothing of a shape, Switchyard must refuse it too. Shapes the
// proxy does not handle yet are listed in knownFailing: their failures
// are logged, not reported. FuzzRequestPath feeds arbitrary bytes through
// one proxy and checks that every byte its instance received belongs to
// exactly one well-framed request and that every answer reached the
// client that asked; its seeds in testdata/fuzz/FuzzRequestPath are the
// shapes of the table (TestFuzzSeeds keeps them in step).
//
// The HAProxy half runs /usr/sbin/haproxy (or haproxy on PATH) and is
// skipped when there is none, unless SWITCHYARD_REQUIRE_HAPROXY is set;
// scripts/install-test-deps.sh installs it.
package conformance
