package proxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/proxy/clientconn"
	"github.com/switchyard/switchyard/routes"
)

// Write and pipe sizes out of bounds are refused.
func TestStreamSizeBounds(t *testing.T) {
	for _, cfg := range []Config{
		{ResponseWriteSize: MinResponseWriteSize - 1}, {ResponseWriteSize: MaxResponseWriteSize + 1},
		{SplicePipeSize: MinSplicePipeSize - 1}, {SplicePipeSize: MaxSplicePipeSize + 1},
	} {
		cfg.AccessLog, cfg.Logger = accessLogDiscard(), discardLogger()
		if _, err := New(cfg); err == nil {
			t.Errorf("New with ResponseWriteSize %d, SplicePipeSize %d: no error", cfg.ResponseWriteSize, cfg.SplicePipeSize)
		}
	}
}

// hugeSize is the body of streamBackend's /huge: more than the socket
// buffers between the proxy and a client that stops reading can hold.
const hugeSize = 32 << 20

// streamBackend serves body in pieces of 100 KiB + 3, flushed one by one,
// with its Content-Length, or chunked with ?chunked=1; and hugeSize bytes
// at /huge.
func streamBackend(t *testing.T) (b *backend, body []byte) {
	body = make([]byte, 3<<20+7)
	for i := range body {
		body[i] = byte(i % 251)
	}
	huge := bytes.Repeat([]byte("z"), 1<<20)
	b = startBackend(t, "big-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/huge" {
			w.Header().Set("Content-Length", strconv.Itoa(hugeSize))
			for range hugeSize / len(huge) {
				if _, err := w.Write(huge); err != nil {
					return
				}
			}
			return
		}
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 100<<10+3)
			if _, err := w.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			w.(http.Flusher).Flush()
		}
	})
	return b, body
}

// The write size (0: the default) is what the client connections copy
// with (clientconn's TestReadFromCopySize checks that they do), and a
// copied response body reaches the client byte for byte whatever the
// size, with and without Content-Length, including sizes that do not
// divide the body. (Splicing is off: a body with a Content-Length would
// be spliced.)
func TestResponseWriteSizes(t *testing.T) {
	b, body := streamBackend(t)
	for _, size := range []int{MinResponseWriteSize, 0, 1 << 20} {
		p := startProxy(t, Config{ResponseWriteSize: size, SplicePipeSize: -1}, mustTable(t,
			&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
				Instances: []*routes.Instance{inst("big-1", b.addr, "zone-a", "blue")}}))
		want := cmp.Or(size, clientconn.DefaultCopySize)
		if got := p.clients; got.CopySize != want || got.PipeSize >= 0 || got.Counts != &p.bodies {
			t.Errorf("write size %d: client connections listen with %+v; want copy size %d, no pipes, the server's counts", size, got, want)
		}
		for _, q := range []string{"", "?chunked=1"} {
			req, _ := http.NewRequest("GET", "http://"+p.Addr().String()+"/big"+q, nil)
			req.Host = depA + ".example.test"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("write size %d%s: %v", size, q, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Errorf("write size %d%s: %d, %d bytes (%v), equal %v; want 200 and the %d bytes sent",
					size, q, resp.StatusCode, len(got), err, bytes.Equal(got, body), len(body))
			}
		}
	}
}

// A response body with a Content-Length reaches the client byte for byte
// whether it is spliced (default pipes, the smallest) or copied (off), as
// the metrics tell; the instance connection is reused after it; the access
// log counts its bytes; and a client that goes away mid-body is logged as
// 499 with the instance connection closed, not reused.
func TestSplicedResponseBodies(t *testing.T) {
	b, body := streamBackend(t)
	for _, size := range []int{0, MinSplicePipeSize, -1} {
		cfg := Config{SplicePipeSize: size}
		cfg.AccessLog.Path = t.TempDir() + "/access.log"
		p := startProxy(t, cfg, mustTable(t,
			&routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
				Instances: []*routes.Instance{inst("big-1", b.addr, "zone-a", "blue")}}))
		dials := b.accepted.Load()
		for i := range 3 {
			req, _ := http.NewRequest("GET", p.url+"/big", nil)
			req.Header.Set("X-Found-Cluster", depA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("pipe size %d, request %d: %v", size, i, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Fatalf("pipe size %d, request %d: %d, %d bytes (%v), equal %v; want 200 and the %d bytes sent",
					size, i, resp.StatusCode, len(got), err, bytes.Equal(got, body), len(body))
			}
		}
		if n := b.accepted.Load() - dials; n != 1 {
			t.Errorf("pipe size %d: 3 requests took %d instance connections; want 1", size, n)
		}
		spliced := metricValue(t, p, `switchyard_response_bodies_streamed_total{via="splice"}`)
		copied := metricValue(t, p, `switchyard_response_bodies_streamed_total{via="copy"}`)
		if size >= 0 && (spliced != 3 || copied != 0) || size < 0 && (spliced != 0 || copied != 3) {
			t.Errorf("pipe size %d: %v bodies spliced, %v copied", size, spliced, copied)
		}
		if f := metricValue(t, p, "switchyard_splice_pipe_failures_total"); f != 0 {
			t.Errorf("pipe size %d: %v pipe failures", size, f)
		}

		// A client that reads a little and hangs up.
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /huge HTTP/1.1\r\nHost: x\r\nX-Found-Cluster: %s\r\n\r\n", depA)
		if _, err := io.ReadFull(c, make([]byte, 64<<10)); err != nil {
			t.Fatalf("pipe size %d: the first 64 KiB: %v", size, err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		// It took the pooled connection, which the cut closes rather than
		// pools: none is left open.
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("pipe size %d: the instance connection of the cut response to close", size), func() bool { return b.conns.Load() == 0 })

		p.stop(t) // flushes the access log
		data, err := os.ReadFile(cfg.AccessLog.Path)
		if err != nil {
			t.Fatal(err)
		}
		type entry struct {
			Status   int   `json:"status_code"`
			BytesOut int64 `json:"bytes_out"`
		}
		var lines []entry
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("access log line %q: %v", line, err)
			}
			lines = append(lines, e)
		}
		if len(lines) != 4 {
			t.Fatalf("pipe size %d: %d access log lines; want 4:\n%s", size, len(lines), data)
		}
		for i, e := range lines[:3] {
			if e.Status != 200 || e.BytesOut != int64(len(body)) {
				t.Errorf("pipe size %d, request %d: logged %d with %d bytes out; want 200 with %d", size, i, e.Status, e.BytesOut, len(body))
			}
		}
		if e := lines[3]; e.Status != 499 || e.BytesOut <= 0 || e.BytesOut >= hugeSize {
			t.Errorf("pipe size %d, the client that hung up: logged %d with %d bytes out; want 499 with part of the body", size, e.Status, e.BytesOut)
		}
	}
}
