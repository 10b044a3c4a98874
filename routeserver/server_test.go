package routeserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func input(version uint64, addr string) Input {
	return Input{Version: version, Domain: "example.test", Synced: true, Deployments: map[string]*routes.DeploymentSpec{
		"aaaaaaaa": {ID: "aaaaaaaa", Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-1", Addr: addr, Zone: "z", Generation: "blue"}}},
	}}
}

func newServer(t *testing.T, maxWait time.Duration) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{Name: "rs", MaxWait: maxWait, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNoTableThenFullThenHeldPoll(t *testing.T) {
	s, hs := newServer(t, 300*time.Millisecond)
	if resp, _ := get(t, hs.URL+"/v1/routes"); resp.StatusCode != 503 {
		t.Errorf("before a table: %d; want 503", resp.StatusCode)
	}
	if resp, _ := get(t, hs.URL+"/_health"); resp.StatusCode != 502 {
		t.Errorf("health before a table: %d; want 502", resp.StatusCode)
	}
	s.Update(input(5, "127.0.0.1:1"))
	resp, _ := get(t, hs.URL+"/v1/routes")
	if resp.StatusCode != 200 || resp.Header.Get(wire.HeaderVersion) != "5" {
		t.Fatalf("first poll: %d version %s", resp.StatusCode, resp.Header.Get(wire.HeaderVersion))
	}
	hash := s.Status().Hash
	start := time.Now()
	resp, _ = get(t, hs.URL+"/v1/routes?version=5&hash="+hash)
	if resp.StatusCode != 304 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("poll at the current version: %d after %v; want 304 after the 300ms wait", resp.StatusCode, time.Since(start))
	}
	// An empty table never replaces a good one.
	s.Update(Input{Version: 9, Domain: "example.test", Synced: true, Deployments: map[string]*routes.DeploymentSpec{}})
	if st := s.Status(); st.Version != 5 {
		t.Errorf("after an empty table: version %d; want 5", st.Version)
	}
}

// A poll at the current table that names a staleness other than the
// server's is answered at once; one that names the server's is held.
func TestPollWithOtherStalenessAnsweredAtOnce(t *testing.T) {
	s, hs := newServer(t, 2*time.Second)
	in := input(5, "127.0.0.1:1")
	in.Stale = true
	s.Update(in)
	at := hs.URL + "/v1/routes?version=5&hash=" + s.Status().Hash
	for _, c := range []struct {
		stale string
		held  bool
	}{{"false", false}, {"true", true}, {"", true}} {
		start := time.Now()
		resp, _ := get(t, at+"&stale="+c.stale)
		took := time.Since(start)
		if resp.StatusCode != 304 || resp.Header.Get(wire.HeaderStale) != "true" || (took >= time.Second) != c.held {
			t.Errorf("stale=%q: %d, %s %s after %v; want 304, stale true, held %v", c.stale, resp.StatusCode, wire.HeaderStale, resp.Header.Get(wire.HeaderStale), took, c.held)
		}
	}
	if resp, body := get(t, at+"&stale=maybe"); resp.StatusCode != 400 || !strings.Contains(body, "stale") {
		t.Errorf("stale=maybe: %d %s; want 400 naming stale", resp.StatusCode, body)
	}
}

func TestOneEncodingForManyProxies(t *testing.T) {
	// The polls are held until all 20 have come, which a loaded machine
	// can take seconds for.
	s, hs := newServer(t, 30*time.Second)
	s.Update(input(5, "127.0.0.1:1"))
	hash := s.Status().Hash
	// 20 proxies at version 5 wait; one change wakes them all.
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", hs.URL+"/v1/routes?wait=30s&version=5&hash="+hash, nil)
			req.Header.Set(wire.HeaderProxy, "p"+strconv.Itoa(i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}(i)
	}
	testutil.EventuallyErr(t, 10*time.Second, "20 proxies polling", func() error {
		if n := len(s.Status().Proxies); n != 20 {
			return fmt.Errorf("%d polling", n)
		}
		return nil
	})
	before := promtest.ToFloat64(s.metrics.encodes)
	s.Update(input(6, "127.0.0.1:2"))
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("a waiting proxy got %d; want 200", c)
		}
	}
	if n := promtest.ToFloat64(s.metrics.encodes) - before; n != 1 {
		t.Errorf("20 proxies made %v encodings of the same delta; want 1", n)
	}
	if d := promtest.ToFloat64(s.metrics.deltas); d != 20 {
		t.Errorf("%v deltas sent; want 20", d)
	}
	if n := len(s.Status().Proxies); n != 20 {
		t.Errorf("status lists %d proxies; want 20", n)
	}
}

func TestReportIsValidated(t *testing.T) {
	s, err := New(Config{Name: "rs", Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Ready()
	base := "http://" + s.Addr().String()
	for _, c := range []struct{ body, want string }{
		{`{"generations":[]}`, `report: proxy: missing`},
		{`{"proxy":"p1","generations":[{"deployment":"d","generation":"g","requests":1,"errors":2}]}`, `generations[0]`},
		{`{"proxy":"p1","extra":1}`, `unknown field`},
		{`not json`, `report: `},
	} {
		resp, err := http.Post(base+"/v1/report", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), c.want) || !strings.HasPrefix(string(b), "{") {
			t.Errorf("POST %s: %d %s; want 400 with a JSON body saying %q", c.body, resp.StatusCode, b, c.want)
		}
	}
	if r := s.Status().Reports; len(r) != 0 {
		t.Errorf("refused reports were kept: %+v", r)
	}
}

// Proxies and reports not heard from within ProxyTTL are dropped as new
// ones arrive, whether or not /status is read; beyond MaxProxies a new
// proxy is served but not recorded, and counted.
func TestProxiesExpireAndAreBounded(t *testing.T) {
	const ttl = 3 * time.Second
	s, err := New(Config{Name: "rs", MaxWait: time.Millisecond, ProxyTTL: ttl, MaxProxies: 3, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// The server's clock moves only when the test moves it.
	var clock atomic.Int64 // ns since the epoch
	clock.Store(time.Now().UnixNano())
	s.now = func() time.Time { return time.Unix(0, clock.Load()) }
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	s.Update(input(1, "127.0.0.1:1"))
	poll := func(id string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/routes", nil)
		req.Header.Set(wire.HeaderProxy, id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("poll from %s: %d; want 200 (served whether recorded or not)", id, resp.StatusCode)
		}
	}
	report := func(id string) int {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/report", "application/json", strings.NewReader(`{"proxy":"`+id+`","generations":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 && !strings.HasPrefix(string(b), "{") {
			t.Errorf("refused report: %s; want a JSON body", b)
		}
		return resp.StatusCode
	}
	held := func() (proxies, reports int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.proxies), len(s.reports)
	}
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		poll(id)
	}
	for _, id := range []string{"p1", "p2", "p3"} {
		if code := report(id); code != 204 {
			t.Fatalf("report from %s: %d; want 204", id, code)
		}
	}
	if code := report("p4"); code != 503 {
		t.Errorf("report from a fourth proxy: %d; want 503", code)
	}
	if p, r := held(); p != 3 || r != 3 {
		t.Errorf("holding %d proxies and %d reports; want 3 and 3 (MaxProxies)", p, r)
	}
	if got := promtest.ToFloat64(s.metrics.untracked.WithLabelValues("poll")); got != 1 {
		t.Errorf("untracked polls = %v; want 1", got)
	}
	if got := promtest.ToFloat64(s.metrics.untracked.WithLabelValues("report")); got != 1 {
		t.Errorf("untracked reports = %v; want 1", got)
	}

	// After the TTL, without /status being read, a new proxy makes room.
	clock.Add(int64(ttl + time.Millisecond))
	poll("p5")
	if p, r := held(); p != 1 || r != 0 {
		t.Errorf("after the TTL: holding %d proxies and %d reports; want only p5", p, r)
	}
	if code := report("p5"); code != 204 {
		t.Errorf("report after the TTL: %d; want 204", code)
	}
	if st := s.Status(); len(st.Proxies) != 1 || st.Proxies[0].ID != "p5" {
		t.Errorf("/status proxies: %+v; want p5 alone", st.Proxies)
	}
}
