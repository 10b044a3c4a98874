package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/switchyard/switchyard/routes"
)

func TestRetries(t *testing.T) {
	dead := &backend{id: "dead", addr: testutil.RefusingAddr(t)}
	stalled := startBackend(t, "stalled", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
	})
	live := startBackend(t, "live", nil)
	// The timeout applies to the live instance too, which must always
	// answer within it: a loaded machine can stall a request for most of a
	// second.
	p := startProxy(t, Config{ResponseHeaderTimeout: time.Second}, mustTable(t,
		&routes.DeploymentSpec{ID: "aaaaaaaa", Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{
			inst("dead", dead.addr, "zone-a", "g"), inst("live", live.addr, "zone-b", "g")}},
		&routes.DeploymentSpec{ID: "bbbbbbbb", Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{
			inst("stalled", stalled.addr, "zone-a", "g"), inst("live", live.addr, "zone-b", "g")}},
	))

	// Connection refused: never sent, so every request is retried on the
	// live instance, whatever its method.
	for i := 0; i < 20; i++ {
		status, _, h := get(t, p.url+"/", "X-Found-Cluster", "aaaaaaaa")
		if status != 200 || h.Get("X-Found-Handling-Instance") != "live" {
			t.Fatalf("GET %d: %d from %q; want 200 from live", i, status, h.Get("X-Found-Handling-Instance"))
		}
		if status := postX(t, p.url+"/", "aaaaaaaa"); status != 200 {
			t.Fatalf("POST %d to a refusing instance: %d; want 200 (never sent, so retried)", i, status)
		}
	}

	// Timeout after sending: an idempotent GET is retried, a POST is not.
	gets, posts504 := 0, 0
	for i := 0; i < 20; i++ {
		if status, _, _ := get(t, p.url+"/", "X-Found-Cluster", "bbbbbbbb"); status == 200 {
			gets++
		}
		status := postX(t, p.url+"/", "bbbbbbbb")
		switch status {
		case 504:
			posts504++
		case 200:
		default:
			t.Errorf("POST: status %d", status)
		}
	}
	if gets != 20 {
		t.Errorf("%d of 20 GETs succeeded with one instance stalled; want 10 (retried)", gets)
	}
	if posts504 == 0 {
		t.Error("no POST to the stalled instance got 504: a sent, non-idempotent request must not be retried")
	}
	// With the budget used up, a refused connect is still retried (the
	// instance never saw the request, so the retry adds no load), but a
	// timed-out GET is not.
	p.budget.retries.Add(1000)
	if status, _, h := get(t, p.url+"/", "X-Found-Cluster", "aaaaaaaa"); status != 200 || h.Get("X-Found-Handling-Instance") != "live" {
		t.Errorf("refused connect with no budget left: %d from %q; want 200 from live", status, h.Get("X-Found-Handling-Instance"))
	}
	if status, _, _ := get(t, p.url+"/", "X-Found-Cluster", "bbbbbbbb"); status == 200 {
		// The pick may have gone to live first; only a 504 proves the rule,
		// so try until the stalled instance is picked.
		for i := 0; i < 20 && status == 200; i++ {
			status, _, _ = get(t, p.url+"/", "X-Found-Cluster", "bbbbbbbb")
		}
		if status != 504 {
			t.Errorf("timed-out GET with no budget left: %d; want 504 (not retried)", status)
		}
	}
	p.budget.retries.Add(-1000)

	_, m, _ := get(t, "http://"+p.AdminAddr().String()+"/metrics")
	if !strings.Contains(m, "switchyard_retries_total ") || strings.Contains(m, "switchyard_retries_total 0\n") {
		t.Error("switchyard_retries_total did not count the retries")
	}
}

func TestRetryBudget(t *testing.T) {
	b := retryBudget{percent: 20, floor: 2}
	b.active.Store(5)
	if !b.acquire() || !b.acquire() {
		t.Fatal("the floor of 2 retries was refused")
	}
	if b.acquire() {
		t.Error("a third retry with 5 requests in flight (20% = 1, floor 2) was allowed")
	}
	b.active.Store(100)
	for i := 0; i < 18; i++ {
		if !b.acquire() {
			t.Fatalf("retry %d of 20 refused with 100 in flight", i+3)
		}
	}
	if b.acquire() {
		t.Error("a 21st retry with 100 in flight was allowed")
	}
	b.release()
	if !b.acquire() {
		t.Error("a released retry was not given back")
	}
}

// An instance that drops requests (reads one, then resets the connection,
// as a process killed mid-request does): a GET's first retry after the
// reset is not charged to the budget, so it is retried even with no
// budget left; a POST is not retried (it was sent).
func TestFirstRetryAfterResetIsFree(t *testing.T) {
	dropper := testutil.ServeTCP(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf) // the request
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // a reset
	})
	live := startBackend(t, "live", nil)
	p := startProxy(t, Config{}, mustTable(t,
		&routes.DeploymentSpec{ID: "cccccccc", Kind: "es", Serving: map[string]int{"g": 1}, Instances: []*routes.Instance{
			inst("dropper", dropper, "zone-a", "g"), inst("live", live.addr, "zone-b", "g")}},
	))
	p.budget.retries.Add(1000) // no budget left
	defer p.budget.retries.Add(-1000)
	for i := 0; i < 10; i++ {
		status, _, h := get(t, p.url+"/", "X-Found-Cluster", "cccccccc")
		if status != 200 || h.Get("X-Found-Handling-Instance") != "live" {
			t.Fatalf("GET %d with no budget left: %d from %q; want 200 from live", i, status, h.Get("X-Found-Handling-Instance"))
		}
	}
	// Some of them met the reset (the path under test), and none was
	// refused by the budget.
	_, metrics, _ := get(t, "http://"+p.AdminAddr().String()+"/metrics")
	if !strings.Contains(metrics, "\nswitchyard_retries_total ") || strings.Contains(metrics, "\nswitchyard_retries_total 0\n") {
		t.Errorf("no retry counted:\n%s", metrics)
	}
	if !strings.Contains(metrics, "\nswitchyard_retry_budget_exhausted_total 0\n") {
		t.Error("a retry was refused by the budget")
	}
	dropped := 0
	for i := 0; i < 20; i++ {
		status := postX(t, p.url+"/", "cccccccc")
		if status == 502 {
			dropped++
		}
	}
	if dropped == 0 {
		t.Error("no POST to the dropping instance got 502: a sent, non-idempotent request must not be retried")
	}
}

func TestChargesBudget(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		tries int
		want  bool
	}{
		{"refused", &upstream.Error{Kind: upstream.KindConnectRefused}, 1, false},
		{"write that sent nothing", &upstream.Error{Kind: upstream.KindReset, Sent: false}, 2, false},
		{"first reset", &upstream.Error{Kind: upstream.KindReset, Sent: true}, 1, false},
		{"second reset", &upstream.Error{Kind: upstream.KindReset, Sent: true}, 2, true},
		{"timeout", &upstream.Error{Kind: upstream.KindTimeout, Sent: true}, 1, true},
		{"malformed", &upstream.Error{Kind: upstream.KindMalformed, Sent: true}, 1, true},
	}
	for _, tt := range tests {
		if got := chargesBudget(tt.err, tt.tries); got != tt.want {
			t.Errorf("%s after %d tries: charged %v; want %v", tt.name, tt.tries, got, tt.want)
		}
	}
}
