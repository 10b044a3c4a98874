package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes/routesfile"
)

func startFleet(t *testing.T) *Fleet {
	t.Helper()
	f, err := Start(Layout())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

var client = &http.Client{Timeout: 10 * time.Second}

func TestLayout(t *testing.T) {
	deps := Layout()
	if len(deps) != 2 {
		t.Fatalf("got %d deployments; want 2", len(deps))
	}
	for _, d := range deps {
		if len(d.ID) != 32 || strings.Trim(d.ID, "0123456789abcdef") != "" {
			t.Errorf("deployment ID %q: want 32 lowercase hex characters", d.ID)
		}
		zones := map[string]int{}
		for _, in := range d.Instances {
			zones[in.Zone]++
		}
		if zones["zone-a"] == 0 || zones["zone-b"] == 0 || len(zones) != 2 {
			t.Errorf("deployment %s zones %v; want instances in zone-a and zone-b", d.ID, zones)
		}
	}
}

func TestInstanceDescribesRequest(t *testing.T) {
	f := startFleet(t)
	for _, d := range f.Deployments {
		for _, in := range d.Instances {
			req, _ := http.NewRequest("GET", "http://"+in.Addr+"/a/b?c=d", nil)
			req.Host = "prod.example.test"
			req.Header.Set("X-Forwarded-For", "10.1.2.3")
			req.Header.Set("X-Unrelated", "x")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got Reply
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: decoding reply: %v", in.ID, err)
			}
			want := Reply{
				Instance: in.ID, Zone: in.Zone, Generation: d.Generation, Deployment: d.ID, Kind: d.Kind,
				Method: "GET", Path: "/a/b?c=d", Host: "prod.example.test",
				Headers: map[string]string{"x-forwarded-for": "10.1.2.3"},
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("got %s; want %s", gotJSON, wantJSON)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
		}
	}
}

func TestInstanceEchoesBody(t *testing.T) {
	f := startFleet(t)
	addr := f.Deployments[0].Instances[0].Addr
	for _, tc := range []struct {
		name    string
		size    int64
		chunked bool
	}{
		{"small", 22, false},
		{"small chunked", 22, true},
		{"large", 1<<20 + 1, false},
		{"large chunked", 48 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := sha256.New()
			io.Copy(sum, io.LimitReader(newPattern(), tc.size))
			var body io.Reader = io.LimitReader(newPattern(), tc.size)
			if tc.chunked {
				body = struct{ io.Reader }{body} // hides the length
			}
			req, _ := http.NewRequest("POST", "http://"+addr+"/_echo", body)
			if !tc.chunked {
				req.ContentLength = tc.size
			}
			req.Header.Set("Content-Type", "application/x-test")
			// Bytes, not speed: 48 MiB under the race detector on a busy
			// machine may take longer than client's 10 s.
			resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := sha256.New()
			n, err := io.Copy(got, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.size || !bytes.Equal(got.Sum(nil), sum.Sum(nil)) {
				t.Errorf("echoed %d bytes (sha256 match %v); want the %d bytes sent", n, bytes.Equal(got.Sum(nil), sum.Sum(nil)), tc.size)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
				t.Errorf("Content-Type %q; want application/x-test", ct)
			}
			if id := resp.Header.Get("X-Demo-Instance"); id != "i-0001" {
				t.Errorf("X-Demo-Instance %q; want i-0001", id)
			}
		})
	}
}

// pattern is an endless reader of non-repeating-looking bytes.
// pattern is an endless byte stream that does not depend on how it is
// read: byte k of the stream is the same whatever the buffer sizes.
type pattern struct{ k *int64 }

func newPattern() pattern { return pattern{k: new(int64)} }

func (p pattern) Read(b []byte) (int, error) {
	for i := range b {
		k := *p.k
		b[i] = byte(k*7 + k>>8)
		*p.k++
	}
	return len(b), nil
}

func TestRoutesFileParses(t *testing.T) {
	f := startFleet(t)
	table, err := routesfile.ParseFile(f.RoutesFile)
	if err != nil {
		t.Fatalf("routes file does not parse: %v\n%s", err, RoutesYAML(f.Deployments))
	}
	for _, d := range f.Deployments {
		for _, key := range []string{d.ID, d.Alias + "." + d.Kind} {
			got := table.Lookup([]byte(key))
			if got == nil || got.ID != d.ID {
				t.Errorf("Lookup(%q) = %v; want deployment %s", key, got, d.ID)
				continue
			}
			if len(got.Eligible) != len(d.Instances) {
				t.Errorf("deployment %s: %d eligible instances; want %d", d.ID, len(got.Eligible), len(d.Instances))
			}
		}
	}
	if table.Domain != Domain {
		t.Errorf("domain %q; want %q", table.Domain, Domain)
	}
}

func TestCloseRemovesRoutesFile(t *testing.T) {
	f, err := Start(Layout())
	if err != nil {
		t.Fatal(err)
	}
	addr := f.Deployments[0].Instances[0].Addr
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.RoutesFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("routes file after Close: %v; want it removed", err)
	}
	if _, err := client.Get("http://" + addr + "/"); err == nil {
		t.Errorf("instance %s still answers after Close", addr)
	}
}

func TestBanner(t *testing.T) {
	f := startFleet(t)
	var b bytes.Buffer
	f.WriteBanner(&b, "0.0.0.0:9300", "127.0.0.1:9344")
	out := b.String()
	for _, want := range []string{
		"curl -s -H 'X-Found-Cluster: 7f3a9c2e51d04b8e9a6c3d2f1e0b4a57' http://127.0.0.1:9300/\n",
		"curl -s -H 'Host: 7f3a9c2e51d04b8e9a6c3d2f1e0b4a57.example.test' http://127.0.0.1:9300/\n",
		"curl -s -H 'Host: prod-search.es.example.test' http://127.0.0.1:9300/\n",
		"curl -s -H 'Host: prod-dash.kb.example.test' http://127.0.0.1:9300/app/home\n",
		`-d '{"hello":"switchyard"}' http://127.0.0.1:9300/_echo` + "\n",
		"curl -s http://127.0.0.1:9344/status\n",
		"curl -s http://127.0.0.1:9344/metrics\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
}

// TestRunStopsOnCancel runs the demo with a stand-in proxy: Run must hand
// over the routes file and addresses, print the banner on Ready, and stop
// the fleet when ctx is done.
func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var banner bytes.Buffer
	var got Proxy
	err := Run(ctx, Options{
		Stdout: &banner,
		Proxy: func(ctx context.Context, p Proxy) error {
			got = p
			if _, err := os.Stat(p.RoutesFile); err != nil {
				t.Errorf("routes file: %v", err)
			}
			p.Ready("127.0.0.1:9200", "127.0.0.1:9244")
			cancel()
			<-ctx.Done()
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Listen != DefaultListen || got.AdminListen != DefaultAdminListen {
		t.Errorf("listen %q admin %q; want the defaults", got.Listen, got.AdminListen)
	}
	if got.DrainDelay <= 0 || got.DrainDelay > time.Second {
		t.Errorf("DrainDelay %v; want a short positive delay", got.DrainDelay)
	}
	if !strings.Contains(banner.String(), "http://127.0.0.1:9200/") {
		t.Errorf("banner:\n%s\nwant the proxy URL", banner.String())
	}
	if _, err := os.Stat(got.RoutesFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("routes file after Run: %v; want it removed", err)
	}
}

// An instance that stops serving unasked ends Wait with its name; Close
// then still stops the others.
func TestFleetWaitReportsAStoppedInstance(t *testing.T) {
	f, err := Start(Layout())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { waited <- f.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with every instance serving", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.lns[1].Close() // the server's Accept fails: it stops unasked
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), f.Deployments[0].Instances[1].ID) {
			t.Errorf("Wait = %v; want the stopped instance named", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after an instance stopped")
	}
	cancel()
	if err := f.Wait(ctx); err != nil {
		t.Errorf("Wait after cancel = %v", err)
	}
}

// A proxy that fails ends Run with its error, and the fleet is stopped.
func TestRunReturnsTheProxysError(t *testing.T) {
	var routes string
	boom := errors.New("listen: address in use")
	err := Run(context.Background(), Options{Proxy: func(ctx context.Context, p Proxy) error {
		routes = p.RoutesFile
		return boom
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v; want the proxy's error", err)
	}
	if _, serr := os.Stat(routes); !os.IsNotExist(serr) {
		t.Errorf("routes file %s left behind: %v", routes, serr)
	}
}
