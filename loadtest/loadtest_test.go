package loadtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/loadtest"
)

func TestClosedLoopSendsExactlyRequests(t *testing.T) {
	for _, tc := range []struct {
		conns    int
		requests int64
	}{{1, 1}, {1, 50}, {4, 100}, {7, 333}} {
		var seen atomic.Int64
		url := serve(t, func(w http.ResponseWriter, r *http.Request) { seen.Add(1) })
		r := run(t, loadtest.Config{URL: url, Connections: tc.conns, Requests: tc.requests})
		if r.Sent != tc.requests || r.Completed != tc.requests || r.Status[200] != tc.requests || seen.Load() != tc.requests {
			t.Errorf("%d conns, %d requests: got sent %d, completed %d, 200s %d, server saw %d; want %d each",
				tc.conns, tc.requests, r.Sent, r.Completed, r.Status[200], seen.Load(), tc.requests)
		}
		if r.Failed() != 0 || r.Mode != "closed" || r.Latency.Count != tc.requests {
			t.Errorf("got failed %d, mode %q, latency count %d; want 0, closed, %d", r.Failed(), r.Mode, r.Latency.Count, tc.requests)
		}
	}
}

func TestClosedLoopStopsAtDuration(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	r := run(t, loadtest.Config{URL: url, Connections: 2, Duration: 300 * time.Millisecond})
	if r.Completed == 0 || r.Sent != r.Completed || r.Failed() != 0 {
		t.Errorf("got sent %d, completed %d, failed %d; want sent = completed > 0, no failures", r.Sent, r.Completed, r.Failed())
	}
}

// Open loop: R × D requests leave, each at its intended time.
// (Takes about a second of wall time.)
func TestOpenLoopSendsRateTimesDuration(t *testing.T) {
	var seen atomic.Int64
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { seen.Add(1) })
	const rate, d = 200, time.Second
	r := run(t, loadtest.Config{URL: url, Connections: 4, Rate: rate, Duration: d})
	want := int64(rate * d.Seconds())
	// A loaded machine may hold the sender back for a while near the end.
	if r.Sent+r.Unsent != want || r.Sent < want*3/4 {
		t.Errorf("got sent %d, unsent %d; want sent + unsent = %d, sent within 25%%", r.Sent, r.Unsent, want)
	}
	if r.Completed != r.Sent || seen.Load() != r.Sent || r.Mode != "open" || r.TargetRate != rate {
		t.Errorf("got completed %d, server saw %d, mode %q, rate %g; want %d, %d, open, %d",
			r.Completed, seen.Load(), r.Mode, r.TargetRate, r.Sent, r.Sent, rate)
	}
}

// A server that stalls once for 600 ms while requests keep falling due:
// the requests queued behind the stall must show it in their latency, as
// a real client population would see it, not only the one that stalled
// (coordinated omission). A closed loop over the same server sees one slow
// request. "Slow" is half the stall, far above what a loaded machine adds
// to a request. (Takes about two seconds of wall time.)
func TestOpenLoopLatencyCountsFromIntendedTime(t *testing.T) {
	const stall, slowAt = 600 * time.Millisecond, 300 * time.Millisecond
	newServer := func() string {
		var n atomic.Int64
		return serve(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 20 {
				time.Sleep(stall)
			}
		})
	}
	countSlow := func(cfg loadtest.Config) (*loadtest.Report, int64) {
		var slow atomic.Int64
		cfg.OnResponse = func(r *loadtest.Result) {
			if r.Latency >= slowAt {
				slow.Add(1)
			}
		}
		return run(t, cfg), slow.Load()
	}

	// 100 req/s: a request falls due every 10 ms, about 60 during the stall,
	// the first 30 of them more than slowAt before it ends.
	open, slow := countSlow(loadtest.Config{URL: newServer(), Connections: 1, Rate: 100, Requests: 100})
	if open.Failed() != 0 || open.Completed != 100 {
		t.Fatalf("open loop: got failed %d, completed %d; want 0, 100", open.Failed(), open.Completed)
	}
	if open.Latency.Max < stall || open.Latency.P999 < stall*9/10 {
		t.Errorf("open loop: got max %v, p99.9 %v; want both about the %v stall", open.Latency.Max, open.Latency.P999, stall)
	}
	if open.Latency.P90 < slowAt || slow < 20 {
		t.Errorf("open loop: got p90 %v, %d requests over %v; want the ~30 requests queued behind the stall over %v", open.Latency.P90, slow, slowAt, slowAt)
	}
	if open.Late < 15 || open.MaxLateness < stall*3/4 {
		t.Errorf("open loop: got %d late, max lateness %v; want >= 15 late, lateness near %v", open.Late, open.MaxLateness, stall)
	}

	closed, slow := countSlow(loadtest.Config{URL: newServer(), Connections: 1, Requests: 100})
	if slow != 1 || closed.Latency.Max < stall {
		t.Errorf("closed loop: got %d requests over %v, max %v; want 1, >= %v", slow, slowAt, closed.Latency.Max, stall)
	}
}

// In an open loop a request's timeout runs from its intended time, so a
// request that waited for a connection has only the rest of it: against a
// server that never answers every request ends as a timeout and the backlog
// never grows past Rate × Timeout.
func TestOpenLoopTimeoutRunsFromIntendedTime(t *testing.T) {
	url := rawServer(t, hang)
	r := run(t, loadtest.Config{URL: url, Connections: 1, Rate: 200, Requests: 100, Timeout: 100 * time.Millisecond})
	if r.Sent+r.Expired != 100 || r.Errors[loadtest.KindTimeout] != 100 || r.Failed() != 100 || r.Completed != 0 {
		t.Errorf("got sent %d, expired %d, timeouts %d, failed %d, completed %d; want sent + expired = 100, all timeouts",
			r.Sent, r.Expired, r.Errors[loadtest.KindTimeout], r.Failed(), r.Completed)
	}
	if r.Latency.Count != 100 || r.Latency.Max < 100*time.Millisecond || r.Late < 90 {
		t.Errorf("got latency count %d, max %v, %d late; want 100, >= the 100ms timeout, >= 90 late", r.Latency.Count, r.Latency.Max, r.Late)
	}
}

func TestStatusAndErrorCounts(t *testing.T) {
	every3rd503 := func(t *testing.T) string {
		var n atomic.Int64
		return serve(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%3 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
	}
	reset := func(t *testing.T) string {
		return rawServer(t, func(c net.Conn) {
			c.Read(make([]byte, 4096))
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		})
	}
	for _, tc := range []struct {
		name    string
		url     func(*testing.T) string
		timeout time.Duration
		status  map[int]int64
		errors  map[string]int64
	}{
		{"503 for every third", every3rd503, 0, map[int]int64{200: 60, 503: 30}, map[string]int64{}},
		{"connection refused", closedPort, 0, map[int]int64{}, map[string]int64{loadtest.KindRefused: 90}},
		{"server hangs", func(t *testing.T) string { return rawServer(t, hang) }, 100 * time.Millisecond,
			map[int]int64{}, map[string]int64{loadtest.KindTimeout: 90}},
		{"server resets", reset, 0, map[int]int64{}, map[string]int64{loadtest.KindReset: 90}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, loadtest.Config{URL: tc.url(t), Connections: 3, Requests: 90, Timeout: tc.timeout})
			if !maps.Equal(r.Status, tc.status) || !maps.Equal(r.Errors, tc.errors) {
				t.Errorf("got status %v, errors %v; want %v, %v", r.Status, r.Errors, tc.status, tc.errors)
			}
			want := tc.status[503]
			for _, n := range tc.errors {
				want += n
			}
			if r.Failed() != want || r.Sent != 90 {
				t.Errorf("got failed %d, sent %d; want %d, 90", r.Failed(), r.Sent, want)
			}
		})
	}
}

// A server that closes every keep-alive connection after one response,
// without saying so: idempotent requests are sent again on a new
// connection, as HTTP clients do; others fail.
func TestRetriesOnlyIdempotentRequestsOnClosedKeepAlive(t *testing.T) {
	url := rawServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for n := 0; !bytes.Contains(buf[:n], []byte("\r\n\r\n")); {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
	})
	r := run(t, loadtest.Config{URL: url, Connections: 1, Requests: 20})
	if r.Completed != 20 || r.Failed() != 0 || r.Retries != 19 {
		t.Errorf("GET: got completed %d, failed %d, retries %d; want 20, 0, 19", r.Completed, r.Failed(), r.Retries)
	}
	r = run(t, loadtest.Config{URL: url, Method: "POST", Connections: 1, Requests: 20})
	if r.Completed != 10 || r.Errors[loadtest.KindReset] != 10 || r.Retries != 0 {
		t.Errorf("POST: got completed %d, resets %d, retries %d; want 10, 10, 0", r.Completed, r.Errors[loadtest.KindReset], r.Retries)
	}
}

// recorder is a server that records one string per request.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (rec *recorder) serve(t *testing.T, value func(*http.Request) string) string {
	rec.seen = map[string]int{}
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[value(r)]++
		rec.mu.Unlock()
	})
}

func (rec *recorder) values() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Sorted(maps.Keys(rec.seen))
}

func TestKeysArePickedFromTheList(t *testing.T) {
	keys := []string{"k1", "k2", "prod-search.es", "7f3a9c2e51d04b8e", "k5"}
	for _, tc := range []struct {
		name string
		cfg  loadtest.Config
		got  func(*http.Request) string
		want []string
	}{
		{"X-Found-Cluster", loadtest.Config{}, func(r *http.Request) string { return r.Header.Get("X-Found-Cluster") }, keys},
		{"other header", loadtest.Config{KeyHeader: "x-route"}, func(r *http.Request) string { return r.Header.Get("X-Route") }, keys},
		{"host template", loadtest.Config{HostTemplate: "{key}.example.test"},
			func(r *http.Request) string { return r.Host + "|" + r.Header.Get("X-Found-Cluster") },
			[]string{"7f3a9c2e51d04b8e.example.test|", "k1.example.test|", "k2.example.test|", "k5.example.test|", "prod-search.es.example.test|"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			cfg := tc.cfg
			cfg.URL, cfg.Keys, cfg.Connections, cfg.Requests = rec.serve(t, tc.got), keys, 3, 300
			var fromHook sync.Map
			cfg.OnResponse = func(r *loadtest.Result) { fromHook.Store(r.Key, true) }
			run(t, cfg)
			want := slices.Sorted(slices.Values(tc.want))
			if got := rec.values(); !slices.Equal(got, want) {
				t.Errorf("server saw %q; want %q", got, want)
			}
			for _, k := range keys {
				if _, ok := fromHook.Load(k); !ok {
					t.Errorf("OnResponse never saw key %q", k)
				}
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	type seen struct {
		method, host, uri, a string
		bs                   []string
		body                 []byte
	}
	var mu sync.Mutex
	var got []seen
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.Host, r.RequestURI, r.Header.Get("X-A"), r.Header.Values("X-B"), body})
		mu.Unlock()
	})
	body := loadtest.PatternBody(1234)
	r := run(t, loadtest.Config{
		URL: url + "/p/q?x=1", Method: "put", Host: "h.example.test", Body: body, Connections: 2, Requests: 10,
		Header: http.Header{"X-A": {"a"}, "X-B": {"1", "2"}},
	})
	want := seen{"PUT", "h.example.test", "/p/q?x=1", "a", []string{"1", "2"}, body}
	if len(got) != 10 {
		t.Fatalf("server saw %d requests; want 10", len(got))
	}
	for _, g := range got {
		if g.method != want.method || g.host != want.host || g.uri != want.uri || g.a != want.a ||
			!slices.Equal(g.bs, want.bs) || !bytes.Equal(g.body, want.body) {
			t.Fatalf("server saw %s %s host %q X-A %q X-B %q body %d bytes; want %s %s host %q X-A %q X-B %q body %d pattern bytes",
				g.method, g.uri, g.host, g.a, g.bs, len(g.body), want.method, want.uri, want.host, want.a, want.bs, len(body))
		}
	}
	if r.BytesSent < 10*1234 || r.BytesReceived == 0 {
		t.Errorf("got %d bytes sent, %d received; want >= %d, > 0", r.BytesSent, r.BytesReceived, 10*1234)
	}
	if string(loadtest.PatternBody(20)) != "0123456789abcdef0123" {
		t.Errorf("PatternBody(20) = %q", loadtest.PatternBody(20))
	}
}

func TestHTTPSAndHostFromHeader(t *testing.T) {
	var rec recorder
	rec.seen = map[string]int{}
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[r.Host]++
		rec.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	tlsConfig := s.Client().Transport.(*http.Transport).TLSClientConfig
	r := run(t, loadtest.Config{URL: s.URL, TLSConfig: tlsConfig, Header: http.Header{"Host": {"h.example.test"}}, Connections: 2, Requests: 20})
	if r.Status[200] != 20 || !slices.Equal(rec.values(), []string{"h.example.test"}) {
		t.Errorf("got status %v, errors %v, hosts %q; want 20 200s to h.example.test", r.Status, r.Errors, rec.values())
	}
}

// The hook sees status, latency and response headers of every request,
// e.g. to count which instance handled each.
func TestOnResponseSeesEveryResponse(t *testing.T) {
	var n atomic.Int64
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.Header().Set("X-Found-Handling-Instance", "i-0001")
		} else {
			w.Header().Set("X-Found-Handling-Instance", "i-0002")
		}
	})
	var mu sync.Mutex
	byInstance := map[string]int{}
	seqs := map[int64]bool{}
	hook := func(r *loadtest.Result) {
		mu.Lock()
		defer mu.Unlock()
		byInstance[string(r.Header("X-Found-Handling-Instance"))]++
		seqs[r.Seq] = true
		if r.Status != 200 || r.Latency <= 0 || r.Err != nil || r.Kind != "" {
			t.Errorf("hook got status %d, latency %v, err %v, kind %q", r.Status, r.Latency, r.Err, r.Kind)
		}
	}
	run(t, loadtest.Config{URL: url, Connections: 4, Requests: 100, OnResponse: hook})
	if want := map[string]int{"i-0001": 50, "i-0002": 50}; !maps.Equal(byInstance, want) || len(seqs) != 100 {
		t.Errorf("got instances %v, %d distinct Seq; want %v, 100", byInstance, len(seqs), want)
	}
}

func TestStartSnapshotStop(t *testing.T) {
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	l, err := loadtest.Start(context.Background(), loadtest.Config{URL: url, Connections: 2}) // no bound
	if err != nil {
		t.Fatal(err)
	}
	var snap loadtest.Report
	for deadline := time.Now().Add(30 * time.Second); snap.Completed < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: snapshot %+v; want >= 20 completed", snap)
		}
		time.Sleep(10 * time.Millisecond)
		snap = l.Snapshot()
	}
	select {
	case <-l.Done():
		t.Fatal("a run without bounds ended by itself")
	default:
	}
	r := l.Stop()
	if r.Completed < snap.Completed || r.Failed() != 0 || r.Duration < snap.Duration {
		t.Errorf("got completed %d, failed %d, duration %v; want >= snapshot's %d, 0, >= %v",
			r.Completed, r.Failed(), r.Duration, snap.Completed, snap.Duration)
	}
	if r2 := l.Stop(); r2 != r || l.Wait() != r {
		t.Error("a second Stop or Wait returned another report")
	}
	if s := l.Snapshot(); s.Completed != r.Completed {
		t.Errorf("snapshot after the end: got %d completed; want %d", s.Completed, r.Completed)
	}
}

// Cancelling the context, as SIGINT does, ends the run at once with the
// results so far; requests cut short are Canceled, not failed.
func TestCancelReturnsPartialResults(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 20 {
			cancel()
			<-r.Context().Done() // hang until the client goes
		}
	})
	r, err := loadtest.Run(ctx, loadtest.Config{URL: url, Connections: 1, Duration: time.Hour, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 20 || r.Failed() != 0 || r.Canceled != 1 || r.Sent != 21 {
		t.Errorf("got completed %d, failed %d, canceled %d, sent %d; want 20, 0, 1, 21",
			r.Completed, r.Failed(), r.Canceled, r.Sent)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   loadtest.Config
		field string
	}{
		{loadtest.Config{}, "URL"},
		{loadtest.Config{URL: "ftp://x/"}, "URL"},
		{loadtest.Config{URL: "http:///path"}, "URL"},
		{loadtest.Config{URL: "http://x/", Method: "GE T"}, "Method"},
		{loadtest.Config{URL: "http://x/", Header: http.Header{"Bad Name": {"v"}}}, "Header"},
		{loadtest.Config{URL: "http://x/", HostTemplate: "x.example.test", Keys: []string{"a"}}, "HostTemplate"},
		{loadtest.Config{URL: "http://x/", HostTemplate: "{key}.example.test"}, "HostTemplate"},
		{loadtest.Config{URL: "http://x/", Keys: []string{"a b"}}, "Keys"},
		{loadtest.Config{URL: "http://x/", KeyHeader: "a:b"}, "KeyHeader"},
		{loadtest.Config{URL: "http://x/", Connections: -1}, "Connections"},
		{loadtest.Config{URL: "http://x/", Rate: -1}, "Rate"},
		{loadtest.Config{URL: "http://x/", Duration: -1}, "Duration"},
		{loadtest.Config{URL: "http://x/", Requests: -1}, "Requests"},
		{loadtest.Config{URL: "http://x/", Timeout: -1}, "Timeout"},
		{loadtest.Config{URL: "https://x/", Protocol: "spdy"}, "Protocol"},
		{loadtest.Config{URL: "http://x/", Protocol: loadtest.HTTP2}, "Protocol"},
		{loadtest.Config{URL: "http://x/", Protocol: loadtest.HTTP3}, "Protocol"},
		{loadtest.Config{URL: "https://x/", Protocol: loadtest.HTTP2, Streams: -1}, "Streams"},
		{loadtest.Config{URL: "https://x/", Streams: 2}, "Streams"},
	} {
		_, err := loadtest.Start(context.Background(), tc.cfg)
		var ce *loadtest.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Start(%+v): got %v; want a ConfigError for %s", tc.cfg, err, tc.field)
		}
	}
}
