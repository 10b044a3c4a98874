package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

// A table that moves all weight to green: new requests go to green at once,
// idle connections to blue close, a slow request running on blue finishes,
// and a stream still running on blue after the grace is cut.
// The old generation drains the same whether the new table is built
// whole or derived from the one served (a route server's delta), and
// whether the picker knows the table's addresses (zones.AddrIndex, the
// balancer) or the proxy counts them (zones.Weighted).
func TestCutoverDrainsTheOldGeneration(t *testing.T) {
	for _, mode := range []string{"whole", "derived"} {
		for _, picker := range []string{"weighted", "balancer"} {
			t.Run(mode+"/"+picker, func(t *testing.T) {
				var p zones.Picker = zones.Weighted{}
				if picker == "balancer" {
					p = zones.NewBalancer(zones.Config{})
				}
				testCutoverDrains(t, mode == "derived", p)
			})
		}
	}
}

func testCutoverDrains(t *testing.T, derive bool, picker zones.Picker) {
	release := make(chan struct{})
	var running atomic.Int64 // /slow and /stream requests that reached blue
	blue := startBackend(t, "blue", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			running.Add(1)
			<-release
			io.WriteString(w, "slow done")
		case "/stream":
			running.Add(1)
			w.WriteHeader(200)
			for i := 0; i < 200; i++ { // 10s, 1000 bytes
				if _, err := w.Write([]byte("tick\n")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-time.After(50 * time.Millisecond):
				case <-r.Context().Done(): // the proxy cut the connection
					return
				}
			}
		default:
			io.WriteString(w, "blue")
		}
	})
	green := startBackend(t, "green", nil)
	table := func(serving map[string]int) *routes.Table {
		return mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: serving, Instances: []*routes.Instance{
			inst("blue", blue.addr, "z", "blue"), inst("green", green.addr, "z", "green")}})
	}
	// The grace must outlast the checks between the cutover and the slow
	// request's release, which a loaded machine can stall for a second.
	const grace = 2 * time.Second
	p := startProxy(t, Config{RetireGrace: grace, Picker: picker}, table(map[string]int{"blue": 100, "green": 0}))

	// Warm up pooled connections to blue.
	for i := 0; i < 5; i++ {
		get(t, p.url+"/", "X-Found-Cluster", depA)
	}
	if blue.conns.Load() == 0 {
		t.Fatal("no pooled connection to blue")
	}
	slow := make(chan string, 1)
	go func() { _, body, _ := get(t, p.url+"/slow", "X-Found-Cluster", depA); slow <- body }()
	stream := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", p.url+"/stream", nil)
		req.Header.Set("X-Found-Cluster", depA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			stream <- -1
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		stream <- len(b)
	}()
	testutil.EventuallyErr(t, 10*time.Second, "/slow and /stream running on blue", func() error {
		if n := running.Load(); n != 2 {
			return fmt.Errorf("%d of them", n)
		}
		return nil
	})

	cut := time.Now()
	next := table(map[string]int{"blue": 0, "green": 100})
	if derive {
		next = derived(t, p.Table(), next)
	}
	p.Apply(next)
	for i := 0; i < 20; i++ {
		if _, _, h := get(t, p.url+"/", "X-Found-Cluster", depA); h.Get("X-Found-Handling-Instance") != "green" {
			t.Fatalf("request after the cutover went to %q", h.Get("X-Found-Handling-Instance"))
		}
	}
	// Idle connections to blue are closed: only the two busy ones remain.
	testutil.EventuallyErr(t, 10*time.Second, "only the 2 busy connections to blue open after the cutover", func() error {
		if n := blue.conns.Load(); n > 2 {
			return fmt.Errorf("%d open", n)
		}
		return nil
	})
	close(release)
	if body := <-slow; body != "slow done" {
		t.Errorf("slow request on blue: %q; want it to finish", body)
	}
	n := <-stream
	took := time.Since(cut)
	t.Logf("stream on blue: %d bytes, cut %v after the cutover", n, took)
	if n <= 0 || n >= 1000 || took < grace || took > grace+3*time.Second {
		t.Errorf("stream on blue: %d bytes after %v; want it cut after the %v grace (before its 1000 bytes)", n, took, grace)
	}
	testutil.EventuallyErr(t, 10*time.Second, "no connection to blue open after its requests ended", func() error {
		if n := blue.conns.Load(); n != 0 {
			return fmt.Errorf("%d open", n)
		}
		return nil
	})
}

// A request still waiting for blue's answer when the grace ends is cut;
// an idempotent one is retried on green, never sent to blue again.
func TestCutRequestIsNotResentToTheRetiredInstance(t *testing.T) {
	var hangs atomic.Int64
	blue := startBackend(t, "blue", func(w http.ResponseWriter, r *http.Request) {
		hangs.Add(1)
		<-r.Context().Done()
	})
	green := startBackend(t, "green", nil)
	table := func(serving map[string]int) *routes.Table {
		return mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: serving, Instances: []*routes.Instance{
			inst("blue", blue.addr, "z", "blue"), inst("green", green.addr, "z2", "green")}})
	}
	p := startProxy(t, Config{RetireGrace: 200 * time.Millisecond, ResponseHeaderTimeout: 10 * time.Second},
		table(map[string]int{"blue": 100, "green": 0}))
	got := make(chan string, 1)
	go func() {
		status, _, h := get(t, p.url+"/", "X-Found-Cluster", depA)
		got <- fmt.Sprintf("%d %s", status, h.Get("X-Found-Handling-Instance"))
	}()
	testutil.Eventually(t, 5*time.Second, "the GET reaches blue", func() bool { return hangs.Load() != 0 })
	p.Apply(table(map[string]int{"blue": 0, "green": 100}))
	select {
	case s := <-got:
		if s != "200 green" {
			t.Errorf("GET cut on blue: %q; want 200 from green (retried)", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET cut on blue did not end")
	}
	if n := hangs.Load(); n != 1 {
		t.Errorf("blue got the request %d times; want once", n)
	}
}
