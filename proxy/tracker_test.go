package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

// recordingPicker picks the first instance and records the Begin and End
// calls; open counts the Begins of each deployment and instance that no
// End has matched, which unpaired counts the Ends of.
type recordingPicker struct {
	zones.Weighted
	mu       sync.Mutex
	begins   int
	ends     []trackedEnd
	open     map[[2]any]int
	unpaired int
}

type trackedEnd struct {
	at time.Time
	o  zones.Outcome
}

func (p *recordingPicker) Pick(d *routes.Deployment) *routes.Instance { return d.Instances[0] }
func (p *recordingPicker) Begin(d *routes.Deployment, in *routes.Instance) {
	p.mu.Lock()
	p.begins++
	if p.open == nil {
		p.open = map[[2]any]int{}
	}
	p.open[[2]any{d, in}]++
	p.mu.Unlock()
}
func (p *recordingPicker) End(d *routes.Deployment, in *routes.Instance, o zones.Outcome) {
	p.mu.Lock()
	p.ends = append(p.ends, trackedEnd{time.Now(), o})
	if k := [2]any{d, in}; p.open[k] > 0 {
		p.open[k]--
	} else {
		p.unpaired++
	}
	p.mu.Unlock()
}

func (p *recordingPicker) calls() (int, []trackedEnd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.begins, append([]trackedEnd(nil), p.ends...)
}

// The balancer counts a request as outstanding until its response body
// has been sent, not only until the headers came: a long download keeps
// its instance busy. An instance that fails mid-body ends it as a
// failure.
func TestTrackerEndsWhenTheBodyEnds(t *testing.T) {
	const pause = 400 * time.Millisecond
	// Larger than prefetchBytes, so that the body is streamed.
	half := bytes.Repeat([]byte("x"), prefetchBytes)
	var sent time.Time // when the instance began sending the second half
	var mu sync.Mutex
	be := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2*len(half)))
		w.WriteHeader(200)
		w.Write(half)
		w.(http.Flusher).Flush()
		time.Sleep(pause)
		if r.URL.Path == "/broken" {
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
		// Noted before the write: the proxy may forward the last bytes
		// and end the request before this handler runs on.
		mu.Lock()
		sent = time.Now()
		mu.Unlock()
		w.Write(half)
	})
	picker := &recordingPicker{}
	p := startProxy(t, Config{Picker: picker}, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 100},
		Instances: []*routes.Instance{inst("i", be.addr, "z", "g")}}))

	start := time.Now()
	if status, body, _ := get(t, p.url+"/ok", "X-Found-Cluster", depA); status != 200 || len(body) != 2*len(half) {
		t.Fatalf("GET /ok: %d, %d bytes", status, len(body))
	}
	// The client may read the last byte before the proxy's write returns
	// and the request ends: wait for End rather than expect it already.
	begins, ends := waitEnds(t, picker, 1)
	mu.Lock()
	last := sent
	mu.Unlock()
	if begins != 1 || len(ends) != 1 {
		t.Fatalf("%d Begin, %d End; want 1 and 1", begins, len(ends))
	}
	if ends[0].o != zones.OutcomeSuccess || ends[0].at.Before(last) || ends[0].at.Sub(start) < pause {
		t.Errorf("End %v after the start, outcome %v; want success after the second half began (%v)", ends[0].at.Sub(start), ends[0].o, last.Sub(start))
	}

	req, _ := http.NewRequest("GET", p.url+"/broken", nil)
	req.Header.Set("X-Found-Cluster", depA)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("GET /broken: whole body; want it cut short")
		}
	}
	_, ends = waitEnds(t, picker, 2)
	if len(ends) != 2 || ends[1].o == zones.OutcomeSuccess {
		t.Errorf("after a body cut short by the instance: ends %+v; want a second End with a failure", ends)
	}
	picker.mu.Lock()
	defer picker.mu.Unlock()
	if picker.unpaired != 0 {
		t.Errorf("%d End calls with a deployment and instance no Begin had", picker.unpaired)
	}
}

// waitEnds waits up to 10 s for n calls of End and returns the calls seen.
func waitEnds(t *testing.T, p *recordingPicker, n int) (int, []trackedEnd) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d calls of End", n), func() bool {
		_, ends := p.calls()
		return len(ends) >= n
	})
	return p.calls()
}
