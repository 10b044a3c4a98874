package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Fixture is a proxy whose TLS listener serves HTTP/2, in front of one
// instance running handler (the echo when nil).
type h2Fixture struct {
	*tlsFixture
	client *http.Client
}

func startH2Proxy(t *testing.T, handler http.HandlerFunc, tune func(*Config)) *h2Fixture {
	t.Helper()
	f := startTLSProxy(t, true, tune)
	if handler != nil {
		b := startBackend(t, "a-2", handler)
		f.Apply(mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
			Instances: []*routes.Instance{inst("a-2", b.addr, "zone-a", "blue")}}))
		f.backend = b
	}
	tr := &http2.Transport{TLSClientConfig: f.h2Config()}
	t.Cleanup(tr.CloseIdleConnections)
	return &h2Fixture{tlsFixture: f, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (f *tlsFixture) h2Config() *tls.Config {
	c := f.clientConfig("api.example.test")
	c.NextProtos = []string{"h2"}
	return c
}

func (f *h2Fixture) url(path string) string { return "https://" + f.TLSAddr().String() + path }

func (f *h2Fixture) request(ctx context.Context, method, path string, body io.Reader) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, f.url(path), body)
	req.Header.Set("X-Found-Cluster", depA)
	return req
}

// anotherClientServed checks that a well-behaved client, on a
// connection of its own, is served meanwhile.
func (f *h2Fixture) anotherClientServed(t *testing.T) {
	t.Helper()
	resp, err := f.client.Do(f.request(context.Background(), "GET", "/_search", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("another client: %d", resp.StatusCode)
	}
}

// accessLog stops the proxy (flushing its log) and returns the entries.
func (f *tlsFixture) accessLog(t *testing.T) []map[string]any {
	t.Helper()
	f.stop(t)
	data, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// An HTTP/2 request is logged and counted as one: protocol "HTTP/2" in
// the access log and the protocol label of switchyard_requests_total.
func TestHTTP2LogAndMetrics(t *testing.T) {
	f := startH2Proxy(t, nil, nil)
	for range 3 {
		resp, err := f.client.Do(f.request(context.Background(), "GET", "/_search", nil))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("%s %d; want HTTP/2 200", resp.Proto, resp.StatusCode)
		}
	}
	_, m, _ := get(t, "http://"+f.AdminAddr().String()+"/metrics")
	if want := `switchyard_requests_total{code_class="2xx",protocol="HTTP/2"} 3`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	entries := f.accessLog(t)
	if len(entries) != 3 {
		t.Fatalf("%d access log entries; want 3", len(entries))
	}
	for _, e := range entries {
		if e["protocol"] != "HTTP/2" || e["tls_version"] != "TLSv1.3" || e["client_ip"] != "127.0.0.1" || e["handling_instance"] != "a-1" {
			t.Errorf("access log entry %v", e)
		}
	}
}

// A client that resets its stream (HTTP/2) or cancels its request
// (HTTP/3) while the instance has not answered ends the exchange with
// the instance at once, not at the response header timeout: the
// instance sees its connection closed, and the access log says 499
// client_closed.
func TestResetReachesInstance(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP%d", proto), func(t *testing.T) {
			arrived, gone := make(chan struct{}, 1), make(chan time.Time, 1)
			f, h3 := startH3Proxy(t, func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done() // the proxy closed the connection
				gone <- time.Now()
			}, func(c *Config) { c.ResponseHeaderTimeout = 30 * time.Second })
			client, url := f.client, f.url("/_search")
			if proto == 3 {
				client, url = h3, f.h3URL("/_search")
			}
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("X-Found-Cluster", depA)
			canceled := make(chan time.Time, 1)
			go func() {
				<-arrived // the request is at the instance
				canceled <- time.Now()
				cancel()
			}()
			if _, err := client.Do(req); !errors.Is(err, context.Canceled) {
				t.Fatalf("request: %v; want canceled", err)
			}
			select {
			case at := <-gone:
				if d := at.Sub(<-canceled); d > 5*time.Second {
					t.Errorf("the instance saw the cancel %v after it", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the instance's request did not end after the client's cancel")
			}
			var n int
			for _, e := range f.accessLog(t) {
				if e["path"] == "/_search" {
					n++
					if e["status_code"] != 499.0 || e["status_reason"] != "client_closed" {
						t.Errorf("access log entry %v; want 499 client_closed", e)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d access log entries of the request; want 1", n)
			}
		})
	}
}

// h2Conn is a raw HTTP/2 client connection, for what a well-behaved
// client never sends.
type h2Conn struct {
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

func (f *tlsFixture) dialH2(t *testing.T) *h2Conn {
	t.Helper()
	return f.dialH2With(t, &net.Dialer{Timeout: 5 * time.Second})
}

// dialH2Small dials with a receive buffer of 4 KiB, set before the
// connection is made so that the window it advertises stays small: what
// the server sends backs up at the server.
func (f *tlsFixture) dialH2Small(t *testing.T) *h2Conn {
	t.Helper()
	return f.dialH2With(t, &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}})
}

func (f *tlsFixture) dialH2With(t *testing.T, d *net.Dialer) *h2Conn {
	t.Helper()
	c, err := tls.DialWithDialer(d, "tcp", f.TLSAddr().String(), f.h2Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q; want h2", p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h := &h2Conn{c: c, fr: http2.NewFramer(c, c)}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.buf)
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// headerBlock encodes a GET for depA's /_search, plus extra fields.
func (h *h2Conn) headerBlock(extra ...string) []byte {
	h.buf.Reset()
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/_search"}, {"x-found-cluster", depA}} {
		h.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return append([]byte(nil), h.buf.Bytes()...)
}

// until reads frames until one satisfies done, the connection ends, or
// the deadline passes; it returns the frame, or nil and the error.
func (h *h2Conn) until(d time.Duration, done func(http2.Frame) bool) (http2.Frame, error) {
	h.c.SetReadDeadline(time.Now().Add(d))
	for {
		fr, err := h.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if done(fr) {
			return fr, nil
		}
	}
}

// closedByServer reports whether the connection ended (a GOAWAY, or the
// connection closed) within d, reading what the server sends meanwhile.
func (h *h2Conn) closedByServer(d time.Duration) (http2.ErrCode, bool) {
	fr, err := h.until(d, func(fr http2.Frame) bool { _, ok := fr.(*http2.GoAwayFrame); return ok })
	if err != nil {
		var ne net.Error
		return 0, !(errors.As(err, &ne) && ne.Timeout())
	}
	return fr.(*http2.GoAwayFrame).ErrCode, true
}

// The server's SETTINGS bound what a connection may ask for: the
// streams at once (Config.MaxConcurrentStreams), the header list
// (MaxHeaderBytes) and the frame size.
func TestHTTP2Settings(t *testing.T) {
	f := startH2Proxy(t, nil, func(c *Config) { c.MaxConcurrentStreams = 7 })
	h := f.dialH2(t)
	fr, err := h.until(5*time.Second, func(fr http2.Frame) bool { _, ok := fr.(*http2.SettingsFrame); return ok })
	if err != nil {
		t.Fatal(err)
	}
	got := map[http2.SettingID]uint32{}
	fr.(*http2.SettingsFrame).ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
	if got[http2.SettingMaxConcurrentStreams] != 7 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d; want 7", got[http2.SettingMaxConcurrentStreams])
	}
	if v := got[http2.SettingMaxHeaderListSize]; v == 0 || v > 2*16<<10 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d; want about the 16 KiB header limit", v)
	}
}

// Rapid reset (CVE-2023-44487): a client that opens streams and resets
// them at once, over and over, gets no more than the stream limit of
// requests running at the instance, is cut off, and costs the others
// nothing.
func TestHTTP2RapidReset(t *testing.T) {
	var running, most, hits atomic.Int64
	f := startH2Proxy(t, func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}, func(c *Config) { c.MaxConcurrentStreams = 10 })
	h := f.dialH2(t)
	block := h.headerBlock()
	const streams = 20000
	var sent int
	for id := uint32(1); sent < streams; id += 2 {
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break // cut off
		}
		if err := h.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	code, closed := h.closedByServer(10 * time.Second)
	if !closed {
		t.Errorf("after %d opened and reset streams the connection is still open", sent)
	} else if code != http2.ErrCodeEnhanceYourCalm && code != 0 {
		t.Logf("GOAWAY %v", code)
	}
	if m := most.Load(); m > 2*10 {
		t.Errorf("%d requests ran at the instance at once; the stream limit is 10", m)
	}
	t.Logf("%d streams sent and reset; %d reached the instance, at most %d at once", sent, hits.Load(), most.Load())
	f.anotherClientServed(t)
}

// A CONTINUATION flood (CVE-2023-45288): a header block that never ends
// is cut off once it passes the header limit; nothing reaches the
// instance.
func TestHTTP2ContinuationFlood(t *testing.T) {
	f := startH2Proxy(t, nil, nil)
	h := f.dialH2(t)
	block := h.headerBlock()
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	junk := h.headerBlock("x-junk", strings.Repeat("j", 8000))[len(block):]
	var sent int
	h.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for sent < 64<<20 {
		if err := h.fr.WriteContinuation(1, false, junk); err != nil {
			break
		}
		sent += len(junk)
	}
	if _, closed := h.closedByServer(10 * time.Second); !closed {
		t.Errorf("the connection is open after %d bytes of CONTINUATION", sent)
	}
	if sent >= 64<<20 {
		t.Errorf("the server took %d bytes of one header block", sent)
	}
	if n := f.backend.hits.Load(); n != 0 {
		t.Errorf("%d requests reached the instance", n)
	}
}

// PING and SETTINGS floods: a client that sends control frames and reads
// none of the answers costs the server bounded memory. PINGs, each owed
// an answer, are cut off once the answers queued pass a bound; SETTINGS
// are answered with one ACK for all that came, so the queue stays empty.
// Either way another client is served meanwhile.
func TestHTTP2ControlFrameFloods(t *testing.T) {
	for _, flood := range []struct {
		name    string
		write   func(*http2.Framer) error
		mustCut bool
		most    int // frames sent at most: until the cut, for PING
	}{
		{"PING", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) }, true, 2_000_000},
		{"SETTINGS", func(fr *http2.Framer) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}, false, 100_000},
	} {
		t.Run(flood.name, func(t *testing.T) {
			f := startH2Proxy(t, nil, nil)
			before := heapInUse()
			h := f.dialH2Small(t) // the answers back up at the server
			// The cut comes after the answers fill the server's socket
			// buffers, which the kernel sizes as it likes: about 60 000
			// to 200 000 PINGs, which under the race detector on a loaded
			// machine has taken 70 s. The deadline only bounds a server
			// that never cuts.
			h.c.SetWriteDeadline(time.Now().Add(3 * time.Minute))
			var sent int
			for sent < flood.most {
				if err := flood.write(h.fr); err != nil {
					break
				}
				sent++
			}
			grown := heapInUse() - before
			_, closed := h.closedByServer(2 * time.Second)
			t.Logf("%d %s frames sent; connection closed: %v; heap grew %d KiB", sent, flood.name, closed, grown>>10)
			if flood.mustCut && !closed {
				t.Errorf("the connection is open after %d %s frames with no answer read", sent, flood.name)
			}
			if grown > 32<<20 {
				t.Errorf("the heap grew by %d MiB during the flood", grown>>20)
			}
			f.anotherClientServed(t)
		})
	}
}

// heapInUse is the heap in use after a collection, in bytes.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// An HPACK bomb: a header field put in the dynamic table once and then
// referred to thousands of times decodes to far more than the header
// limit; the request is refused (431) and never forwarded.
func TestHTTP2HPACKBomb(t *testing.T) {
	f := startH2Proxy(t, nil, nil)
	h := f.dialH2(t)
	h.buf.Reset()
	h.enc.SetMaxDynamicTableSizeLimit(4096)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", "/_search"}, {"x-found-cluster", depA}} {
		h.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	big := hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 3000)}
	h.enc.WriteField(big) // into the dynamic table (index 62)
	block := append([]byte(nil), h.buf.Bytes()...)
	for range 2000 {
		block = append(block, 0x80|62) // indexed: the same field again
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	fr, err := h.until(10*time.Second, func(fr http2.Frame) bool {
		_, hdr := fr.(*http2.MetaHeadersFrame)
		_, ga := fr.(*http2.GoAwayFrame)
		_, rst := fr.(*http2.RSTStreamFrame)
		return hdr || ga || rst
	})
	switch fr := fr.(type) {
	case *http2.MetaHeadersFrame:
		if s := fr.PseudoValue("status"); s != "431" {
			t.Errorf("answered %s; want 431", s)
		}
	case nil:
		// The connection ended: refused as well.
		t.Logf("connection ended: %v", err)
	default:
		t.Logf("refused with %T", fr)
	}
	if n := f.backend.hits.Load(); n != 0 {
		t.Errorf("%d requests reached the instance", n)
	}
}

// SIGTERM's drain tells HTTP/2 clients with a GOAWAY; a request running
// then still finishes.
func TestHTTP2DrainSendsGoAway(t *testing.T) {
	release := make(chan struct{})
	f := startH2Proxy(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}, func(c *Config) { c.DrainDelay = 100 * time.Millisecond; c.ShutdownTimeout = 10 * time.Second })
	h := f.dialH2(t)
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.headerBlock(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// The request is at the instance before the drain begins.
	deadline := time.Now().Add(5 * time.Second)
	for f.backend.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { f.cancel(); <-f.done; close(stopped) }()
	f.stopped = true
	fr, err := h.until(5*time.Second, func(fr http2.Frame) bool { _, ok := fr.(*http2.GoAwayFrame); return ok })
	if err != nil {
		t.Fatalf("no GOAWAY after the drain began: %v", err)
	}
	if ga := fr.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID < 1 {
		t.Errorf("GOAWAY %v last stream %d; want NO_ERROR covering stream 1", ga.ErrCode, ga.LastStreamID)
	}
	close(release)
	var status string
	var body []byte
	_, err = h.until(5*time.Second, func(fr http2.Frame) bool {
		switch fr := fr.(type) {
		case *http2.MetaHeadersFrame:
			status = fr.PseudoValue("status")
		case *http2.DataFrame:
			body = append(body, fr.Data()...)
			return fr.StreamEnded()
		}
		return false
	})
	if err != nil || status != "200" || string(body) != "done" {
		t.Errorf("the request running at the drain: status %q body %q err %v", status, body, err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Error("the proxy did not stop")
	}
}

// bigBodySize is the body streamed both ways by the large-body tests:
// 1 GiB, or 32 MiB under the race detector (which slows QUIC's
// per-packet work down many times).
func bigBodySize() int64 {
	if raceEnabled || testing.Short() {
		return 32 << 20
	}
	return 1 << 30
}

// bigBodyTimeout bounds a large-body exchange: generous, for a loaded
// machine; the tests check bytes and memory, not speed.
const bigBodyTimeout = 5 * time.Minute

// mod251Reader is n bytes of a fixed pattern, made as they are read.
type mod251Reader struct{ left, off int64 }

func (r *mod251Reader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = byte((r.off + int64(i)) % 251)
	}
	r.left -= int64(len(p))
	r.off += int64(len(p))
	return len(p), nil
}

// A body larger than memory streams through the proxy both ways, over
// each protocol: the instance echoes it as it arrives, the client reads
// the echo while it still sends, every byte comes back in order, and the
// heap stays under one bound.
func TestLargeBodiesEveryProtocol(t *testing.T) {
	f := startH2Proxy(t, nil, nil)
	size := bigBodySize()
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: f.clientConfig("api.example.test")}}
	for _, tc := range []struct {
		name  string
		c     *http.Client
		url   string
		proto int
	}{
		{"HTTP/1.1", h1, f.testProxy.url, 1},
		{"HTTP/1.1 over TLS", h1, f.url(""), 1},
		{"HTTP/2", f.client, f.url(""), 2},
	} {
		t.Run(strings.ReplaceAll(tc.name, "/", ""), func(t *testing.T) {
			checkStreamEcho(t, tc.c, tc.url, size, tc.proto)
		})
	}
}

// streamEcho sends size bytes to base's /_bulk for depA over c, checks
// the echo byte for byte, and returns how much the heap in use, and the
// process's resident set (VmRSS: the proxy, the client and the instance
// all live in this test process), grew at most meanwhile.
func streamEcho(c *http.Client, base string, size int64, proto int) (heap, rss int64, err error) {
	before, rssBefore := heapInUse(), vmRSS()
	var most, mostRSS atomic.Int64
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if n := int64(ms.HeapInuse); n > most.Load() {
					most.Store(n)
				}
				if n := vmRSS(); n > mostRSS.Load() {
					mostRSS.Store(n)
				}
			}
		}
	}()
	req, _ := http.NewRequest("POST", base+"/_bulk", &mod251Reader{left: size})
	req.Header.Set("X-Found-Cluster", depA)
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != proto || resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("%s %d; want HTTP/%d 200", resp.Proto, resp.StatusCode, proto)
	}
	var got int64
	buf := make([]byte, 256<<10)
	for {
		n, err := resp.Body.Read(buf)
		for i := range buf[:n] {
			if buf[i] != byte((got+int64(i))%251) {
				return 0, 0, fmt.Errorf("byte %d of the echo is wrong", got+int64(i))
			}
		}
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	if got != size {
		return 0, 0, fmt.Errorf("echoed %d bytes; want %d", got, size)
	}
	return most.Load() - before, max(0, mostRSS.Load()-rssBefore), nil
}

// With --http2-cleartext the plain listener serves HTTP/2 with prior
// knowledge beside HTTP/1.1, over the same request path (the instance
// gets X-Forwarded-Proto http); without it, such a client is not served.
func TestHTTP2Cleartext(t *testing.T) {
	h2c := func() *http.Client {
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	b := startBackend(t, "a-1", nil)
	tbl := mustTable(t, &routes.DeploymentSpec{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
		Instances: []*routes.Instance{inst("a-1", b.addr, "zone-a", "blue")}})
	p := startProxy(t, Config{HTTP2Cleartext: true}, tbl)
	for _, c := range []struct {
		name   string
		client *http.Client
		proto  int
	}{{"h2c", h2c(), 2}, {"HTTP/1.1", http.DefaultClient, 1}} {
		status, _, h := getVia(t, c.client, p.url+"/_search", "X-Found-Cluster", depA)
		if status != 200 || h.Get("X-Instance") != "a-1" {
			t.Errorf("%s: %d from %q", c.name, status, h.Get("X-Instance"))
		}
		if got := b.lastRequest().Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("%s: X-Forwarded-Proto %q", c.name, got)
		}
	}
	_, m, _ := get(t, "http://"+p.AdminAddr().String()+"/metrics")
	if want := `switchyard_requests_total{code_class="2xx",protocol="HTTP/2"} 1`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	off := startProxy(t, Config{}, tbl)
	req, _ := http.NewRequest("GET", off.url+"/_search", nil)
	req.Header.Set("X-Found-Cluster", depA)
	if resp, err := h2c().Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("an h2c client was served without --http2-cleartext")
		}
	}
}

// A request head as large as the limit allows passes through HTTP/2 as
// through HTTP/1.1: the front end's copy of the head holds all of it.
func TestHTTP2LargeHead(t *testing.T) {
	f := startH2Proxy(t, nil, nil)
	big := strings.Repeat("v", 12<<10)
	req := f.request(context.Background(), "GET", "/_search", nil)
	req.Header.Set("X-Big", big)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var got string
	if last := f.backend.lastRequest(); last != nil {
		got = last.Header.Get("X-Big")
	}
	if resp.StatusCode != 200 || got != big {
		t.Errorf("%d; the instance got %d bytes of X-Big; want 200 and all %d", resp.StatusCode, len(got), len(big))
	}
}

// The bounds of the large-body tests, the same for every protocol: the
// heap in use may grow by 64 MiB and the resident set by 128 MiB while
// the body streams, whatever its size.
const (
	streamHeapBound = 64 << 20
	streamRSSBound  = 128 << 20
)

// checkStreamEcho runs streamEcho and checks its growth against the
// bounds.
func checkStreamEcho(t *testing.T, c *http.Client, base string, size int64, proto int) {
	t.Helper()
	long := *c
	long.Timeout = bigBodyTimeout
	heap, rss, err := streamEcho(&long, base, size, proto)
	if err != nil {
		t.Fatal(err)
	}
	if heap > streamHeapBound || rss > streamRSSBound {
		t.Errorf("while %d MiB streamed the heap grew by %d MiB and the RSS by %d MiB; bounds %d and %d MiB",
			size>>20, heap>>20, rss>>20, streamHeapBound>>20, streamRSSBound>>20)
	}
	t.Logf("%d MiB each way; heap in use grew at most %d MiB, RSS %d MiB", size>>20, heap>>20, rss>>20)
}

// vmRSS is this process's resident set size in bytes (VmRSS), or 0.
func vmRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
