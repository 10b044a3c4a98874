//go:build linux

package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/loadtest"
	"github.com/switchyard/switchyard/routes"
)

// With idle naps on, every request under load is answered, the napper
// naps while requests come in small batches, waits (does not spin) when
// they stop, wakes for the next request, and ends with the server.
func TestIdleNap(t *testing.T) {
	b := startBackend(t, "b", nil)
	cfg := Config{IdleNap: 30 * time.Microsecond}
	cfg.AccessLog.Off = true
	p := startProxy(t, cfg, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	n := p.progress.(*idleNapper)
	if n == nil {
		t.Fatal("no napper with IdleNap set")
	}

	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		URL: p.url + "/", Header: http.Header{"X-Found-Cluster": {depA}},
		// Few connections: batches stay small on a loaded machine too.
		Connections: 2, Duration: 1500 * time.Millisecond, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completed == 0 || rep.Status[200] != rep.Completed || len(rep.Errors) != 0 {
		t.Fatalf("under load: %d completed, status %v, errors %v; want all 200", rep.Completed, rep.Status, rep.Errors)
	}
	if n.naps.Load() == 0 {
		t.Errorf("no nap during %d requests in small batches", rep.Completed)
	}

	// Quiet: the napper waits for a request instead of napping on.
	testutil.EventuallyErr(t, 10*time.Second, "the napper stops napping once requests stopped", func() error {
		if !n.parked.Load() {
			return fmt.Errorf("%d naps, %d parks", n.naps.Load(), n.parks.Load())
		}
		return nil
	})
	naps, parks := n.naps.Load(), n.parks.Load()
	time.Sleep(100 * time.Millisecond)
	if got := n.naps.Load(); got != naps {
		t.Errorf("%d naps in 100 ms without a request; want none", got-naps)
	}
	if status, _, _ := get(t, p.url+"/", "X-Found-Cluster", depA); status != 200 {
		t.Fatalf("request after the quiet time: %d", status)
	}
	testutil.Eventually(t, 10*time.Second, "the napper wakes for a request and waits again", func() bool { return n.parks.Load() != parks })

	p.stop(t)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the napper still runs after the server stopped")
	}
}

func TestIdleNapBounds(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, MaxIdleNap + 1} {
		if _, err := New(Config{IdleNap: d, AccessLog: accessLogDiscard(), Logger: discardLogger()}); err == nil {
			t.Errorf("New with IdleNap %v: no error", d)
		}
	}
}

// An instance's response counts as work: a napper that parked while a
// request waited for its instance wakes when the response arrives, since
// more responses (and the clients' next requests) are likely to follow.
func TestIdleNapWakesForResponses(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("ok"))
	})
	cfg := Config{IdleNap: 30 * time.Microsecond}
	cfg.AccessLog.Off = true
	p := startProxy(t, cfg, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	n := p.progress.(*idleNapper)

	done := make(chan int, 1)
	go func() {
		status, _, _ := get(t, p.url+"/", "X-Found-Cluster", depA)
		done <- status
	}()
	// The request is with the instance; with nothing else going on the
	// napper parks.
	testutil.EventuallyErr(t, 10*time.Second, "the napper parks while the request waits", func() error {
		if b.hits.Load() == 0 || !n.parked.Load() {
			return fmt.Errorf("%d hits, %d parks", b.hits.Load(), n.parks.Load())
		}
		return nil
	})
	// Woken, it naps, or (if the wake came later than napQuietAfter, as
	// under the race detector it may) parks anew: either way it ran.
	cycles := n.naps.Load() + n.parks.Load()
	close(release)
	if status := <-done; status != 200 {
		t.Fatalf("status %d; want 200", status)
	}
	testutil.Eventually(t, 10*time.Second, "the napper runs after the instance's response", func() bool { return n.naps.Load()+n.parks.Load() != cycles })
}

// A streamed response body counts as work too: a napper that parked while
// the instance paused mid-body wakes when the next part arrives, so that
// the parts of a large body are collected by naps rather than each waking
// the proxy.
func TestIdleNapWakesForBodyParts(t *testing.T) {
	next := make(chan struct{})
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done(): // the test failed and closed the server
					return
				}
			}
			w.Write([]byte("part "))
			w.(http.Flusher).Flush()
		}
	})
	cfg := Config{IdleNap: 30 * time.Microsecond}
	cfg.AccessLog.Off = true
	p := startProxy(t, cfg, mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"g": 1},
		Instances: []*routes.Instance{inst("b", b.addr, "z", "g")}}))
	n := p.progress.(*idleNapper)

	req, _ := http.NewRequest("GET", p.url+"/", nil)
	req.Header.Set("X-Found-Cluster", depA)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first part went through the proxy: its headers and body read
	// are behind it. With the instance paused, the napper parks.
	first := make([]byte, len("part "))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first part: %v", err)
	}
	testutil.EventuallyErr(t, 10*time.Second, "the napper parks while the instance pauses", func() error {
		if !n.parked.Load() {
			return fmt.Errorf("%d parks", n.parks.Load())
		}
		return nil
	})
	// The second part: no request starts and no response begins, only
	// body bytes move; the napper runs again.
	cycles := n.naps.Load() + n.parks.Load()
	next <- struct{}{}
	testutil.Eventually(t, 10*time.Second, "the napper runs while a body part goes through", func() bool { return n.naps.Load()+n.parks.Load() != cycles })
	next <- struct{}{}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(first)+string(rest) != "part part part " {
		t.Fatalf("body %q %q, %v", first, rest, err)
	}
}

// A nap on a thread with the default timer slack overruns, and the napper
// then asks for a 1 µs slack for that thread.
func TestIdleNapSetsTimerSlack(t *testing.T) {
	n, err := newIdleNapper(30 * time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	runtime.LockOSThread() // the slack is per thread
	defer runtime.UnlockOSThread()
	const prGetTimerslack = 30
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 0, 0) // 0: the default
	// A nap may end early, when another interrupt comes after the time
	// asked for; a few tries make the overrun sure.
	for i := 0; i < 50 && n.slacks.Load() == 0; i++ {
		n.sleep(time.Now().UnixNano())
	}
	if n.slacks.Load() == 0 {
		t.Fatal("50 naps with the default timer slack and none overran")
	}
	if got, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerslack, 0, 0); got != 1000 {
		t.Fatalf("timer slack after an overrun nap: %d ns; want 1000", got)
	}
}

// BenchmarkNapLength measures how long the nanosleep of a nap lasts on
// this machine (the timer's own latency comes on top of the nap):
//
//	taskset -c 0 go test -run '^$' -bench NapLength ./proxy
func BenchmarkNapLength(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Microsecond, 30 * time.Microsecond, 100 * time.Microsecond} {
		b.Run(d.String(), func(b *testing.B) {
			runtime.LockOSThread() // the slack is per thread
			defer runtime.UnlockOSThread()
			syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1000, 0)
			ts := syscall.NsecToTimespec(int64(d))
			for b.Loop() {
				syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
			}
		})
	}
}
