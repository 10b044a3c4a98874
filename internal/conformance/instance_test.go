package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestInstance sends requests straight to an instance and checks its
// answers and record.
func TestInstance(t *testing.T) {
	get := func(path, m string) string { return head("GET "+path+" HTTP/1.1", "Host: x", HeaderMarker+": "+m) }
	hidden := get("/hidden", "h")
	withBody := head("GET /a HTTP/1.1", "Host: x", HeaderMarker+": a", fmt.Sprintf("Content-Length: %d", len(hidden))) + hidden
	for _, tc := range []struct {
		name      string
		opts      Options
		in        string
		answers   []string // markers
		requests  int
		malformed int
		truncated int
	}{
		{name: "pipelined", in: get("/a", "a") + get("/b", "b"), answers: []string{"a", "b"}, requests: 2},
		{name: "strict: GET body read", in: withBody, answers: []string{"a"}, requests: 1},
		{name: "lax: GET body is a request", opts: Options{IgnoreGETBodies: true}, in: withBody, answers: []string{"a", "h"}, requests: 2},
		{name: "garbage after a request", in: get("/a", "a") + "junk\r\n\r\n", answers: []string{"a"}, requests: 1, malformed: 1},
		{name: "cut short", in: get("/a", "a") + "GET /b HTTP/1.1\r\nHo", answers: []string{"a"}, requests: 1, truncated: 1},
		{name: "Connection: close", in: head("GET /a HTTP/1.1", "Host: x", HeaderMarker+": a", "Connection: close") + get("/b", "b"), answers: []string{"a"}, requests: 1, malformed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Listen(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			ex, err := Send(in.Addr(), []byte(tc.in), SendOptions{HalfClose: true, NextWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if got := answerMarkers(ex.Final()); !slices.Equal(got, tc.answers) {
				t.Errorf("answers to %q; want %q", got, tc.answers)
			}
			if ex.End != EndClosed {
				t.Errorf("exchange ended %s; want closed", ex.End)
			}
			in.Quiet(10*time.Millisecond, time.Second)
			rec := in.Snapshot()
			var trunc int
			for _, f := range rec.Faults {
				if f.Truncated {
					trunc++
				}
			}
			if len(rec.Requests) != tc.requests || len(rec.Malformed()) != tc.malformed || trunc != tc.truncated {
				t.Errorf("%d requests, %d malformed, %d truncated; want %d, %d, %d (faults %v)",
					len(rec.Requests), len(rec.Malformed()), trunc, tc.requests, tc.malformed, tc.truncated, rec.Faults)
			}
			if rec.Bytes() != len(tc.in) {
				t.Errorf("instance got %d bytes; want %d", rec.Bytes(), len(tc.in))
			}
		})
	}
}
