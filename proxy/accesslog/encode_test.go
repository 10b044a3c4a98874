package accesslog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// decodeLine checks that b is exactly one JSON object on one line and
// returns it, numbers kept as written.
func decodeLine(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("line %q: want exactly one trailing newline", b)
	}
	if !utf8.Valid(b) {
		t.Fatalf("line %q is not valid UTF-8", b)
	}
	for _, c := range b[:len(b)-1] {
		if c < 0x20 {
			t.Fatalf("line %q contains raw control byte %#x", b, c)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// baseEntry is a proxied request with every field set.
func baseEntry() Entry {
	return Entry{
		Time:                time.Date(2024, 5, 1, 12, 34, 56, 789_654_321, time.FixedZone("CEST", 2*3600)),
		RequestID:           []byte("req-1"),
		ClientIP:            []byte("192.0.2.7"),
		Method:              []byte("GET"),
		Host:                []byte("abc.example.com"),
		Path:                []byte("/_search?q=x"),
		HandlingCluster:     "abc123",
		HandlingInstance:    "instance-0000000001",
		AvailabilityZones:   "zone-a",
		StatusCode:          200,
		ResponseTime:        12345678 * time.Nanosecond,
		BackendResponseTime: 10 * time.Millisecond,
		BytesIn:             42,
		BytesOut:            1 << 40,
	}
}

// baseWant is baseEntry as decoded.
func baseWant() map[string]any {
	return map[string]any{
		"@timestamp":            "2024-05-01T10:34:56.789Z",
		"request_id":            "req-1",
		"client_ip":             "192.0.2.7",
		"method":                "GET",
		"host":                  "abc.example.com",
		"path":                  "/_search?q=x",
		"handling_cluster":      "abc123",
		"handling_instance":     "instance-0000000001",
		"availability_zones":    []any{"zone-a"},
		"status_code":           json.Number("200"),
		"response_time":         json.Number("12.346"),
		"backend_response_time": json.Number("10.000"),
		"bytes_in":              json.Number("42"),
		"bytes_out":             json.Number("1099511627776"),
	}
}

func TestAppendEntry(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Entry)
		want func(map[string]any)
	}{
		{"proxied", func(*Entry) {}, func(map[string]any) {}},
		{
			"answered by the proxy",
			func(e *Entry) {
				e.HandlingInstance, e.AvailabilityZones = "", ""
				e.StatusCode, e.StatusReason = 404, "unknown_resource"
				e.BackendResponseTime = -1
			},
			func(m map[string]any) {
				m["handling_instance"] = ""
				m["availability_zones"] = []any{}
				m["status_code"] = json.Number("404")
				m["status_reason"] = "unknown_resource"
				delete(m, "backend_response_time")
			},
		},
		{
			"zero entry",
			func(e *Entry) { *e = Entry{} },
			func(m map[string]any) {
				for _, k := range []string{"request_id", "client_ip", "method", "host", "path", "handling_cluster", "handling_instance"} {
					m[k] = ""
				}
				m["@timestamp"] = "0001-01-01T00:00:00.000Z"
				m["availability_zones"] = []any{}
				m["status_code"] = json.Number("0")
				m["response_time"] = json.Number("0.000")
				m["backend_response_time"] = json.Number("0.000")
				m["bytes_in"] = json.Number("0")
				m["bytes_out"] = json.Number("0")
			},
		},
		{
			"durations round to the microsecond",
			func(e *Entry) {
				e.ResponseTime, e.BackendResponseTime = 2*time.Hour+499*time.Nanosecond, 999_500*time.Nanosecond
			},
			func(m map[string]any) {
				m["response_time"] = json.Number("7200000.000")
				m["backend_response_time"] = json.Number("1.000")
			},
		},
		{
			"nasty strings",
			func(e *Entry) {
				e.RequestID = []byte(`a"b\c`)
				e.ClientIP = []byte("line1\nline2\r\tend")
				e.Method = []byte("\x00\x01\x1f\x7f")
				e.Host = []byte("\xff\xfe.example.com")
				e.Path = []byte("/日本語/✓/🚀?\u2028\ufffd\xe2\x82")
				e.HandlingCluster = "\xed\xa0\x80" // encoded surrogate: invalid
				e.HandlingInstance = "</script>&"
				e.AvailabilityZones = `zone "a"`
				e.StatusReason = "\\u0000"
			},
			func(m map[string]any) {
				m["request_id"] = `a"b\c`
				m["client_ip"] = "line1\nline2\r\tend"
				m["method"] = "\x00\x01\x1f\x7f"
				m["host"] = "\ufffd\ufffd.example.com"
				m["path"] = "/日本語/✓/🚀?\u2028\ufffd\ufffd\ufffd"
				m["handling_cluster"] = "\ufffd\ufffd\ufffd"
				m["handling_instance"] = "</script>&"
				m["availability_zones"] = []any{`zone "a"`}
				m["status_reason"] = `\u0000`
			},
		},
		{
			"protocol",
			func(e *Entry) { e.Protocol = "HTTP/3" },
			func(m map[string]any) { m["protocol"] = "HTTP/3" },
		},
		{
			"over TLS, new session",
			func(e *Entry) { e.TLSVersion = "TLSv1.3" },
			func(m map[string]any) {
				m["tls_version"] = "TLSv1.3"
				m["tls_resumed"] = false
			},
		},
		{
			"over TLS, resumed session",
			func(e *Entry) { e.TLSVersion, e.TLSResumed = "TLSv1.2", true },
			func(m map[string]any) {
				m["tls_version"] = "TLSv1.2"
				m["tls_resumed"] = true
			},
		},
		{
			"plain: a resumed flag alone is not written",
			func(e *Entry) { e.TLSResumed = true },
			func(map[string]any) {},
		},
		{
			"negative and extreme numbers",
			func(e *Entry) {
				e.StatusCode = 599
				e.BytesIn, e.BytesOut = -1, 1<<63-1
				e.ResponseTime = -1500 * time.Microsecond
				e.Time = time.Date(2024, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
			},
			func(m map[string]any) {
				m["status_code"] = json.Number("599")
				m["bytes_in"] = json.Number("-1")
				m["bytes_out"] = json.Number("9223372036854775807")
				m["response_time"] = json.Number("-1.500")
				m["@timestamp"] = "2024-12-31T23:59:59.999Z"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := baseEntry()
			tt.edit(&e)
			want := baseWant()
			tt.want(want)
			got := decodeLine(t, appendEntry(nil, &e))
			for k, w := range want {
				if g, ok := got[k]; !ok {
					t.Errorf("field %q missing; want %#v", k, w)
				} else if !reflect.DeepEqual(g, w) {
					t.Errorf("field %q = %#v; want %#v", k, g, w)
				}
			}
			for k, g := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected field %q = %#v", k, g)
				}
			}
		})
	}
}

func TestAppendEntryFieldOrder(t *testing.T) {
	e := baseEntry()
	e.StatusReason = "upstream_timeout"
	e.TLSVersion, e.Protocol = "TLSv1.3", "HTTP/2"
	got := string(appendEntry(nil, &e))
	order := []string{"@timestamp", "request_id", "client_ip", "method", "host", "path",
		"handling_cluster", "handling_instance", "availability_zones", "status_code",
		"status_reason", "response_time", "backend_response_time", "bytes_in", "bytes_out",
		"protocol", "tls_version", "tls_resumed"}
	last := -1
	for _, k := range order {
		i := strings.Index(got, `"`+k+`":`)
		if i <= last {
			t.Fatalf("field %q at %d, after previous field at %d; line %s", k, i, last, got)
		}
		last = i
	}
}

func TestAppendJSONStringEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t", `"\u000a\u000d\u0009"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é", `"é"`},
		{"\xc3", `"\ufffd"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`}, // above U+10FFFF
		{"\xc0\xaf", `"\ufffd\ufffd"`},                     // overlong '/'
		{"\ufffd", "\"\ufffd\""},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzAppendJSONString checks that every input decodes to what
// encoding/json makes of it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"\\\n", "\x00\xff\xfe", "日本\xe2\x82", "\xed\xa0\x80", "\U0010ffff\xf4\x90\x80\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		if !utf8.Valid(out) || bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("appendJSONString(%q) = %q: invalid UTF-8 or raw newline", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %q: %v", s, out, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("appendJSONString(%q) decodes to %q; want %q", s, got, want)
		}
	})
}

func TestAppendTimestamp(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 2, 29, 1, 2, 3, 4_999_999, time.UTC), "2024-02-29T01:02:03.004Z"},
		{time.Date(2024, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), "2023-12-31T23:30:00.000Z"},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "10000-01-01T00:00:00.000Z"},
	}
	for _, tt := range tests {
		if got := string(appendTimestamp(nil, tt.t)); got != tt.want {
			t.Errorf("appendTimestamp(%v) = %s; want %s", tt.t, got, tt.want)
		}
		if tt.t.Year() <= 9999 {
			if want := tt.t.UTC().Format("2006-01-02T15:04:05.000Z07:00"); want != tt.want {
				t.Errorf("time.Format(%v) = %s; want %s", tt.t, want, tt.want)
			}
		}
	}
}

func BenchmarkAppendEntry(b *testing.B) {
	e := baseEntry()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEntry(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}
