package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
)

var bigBodies = flag.Bool("big-bodies", false, "stream 1 GiB each way instead of 256 MiB")

// rssBound is the most resident memory the proxy may reach while bodies
// many times larger stream through it.
const rssBound = 64 << 20

// pattern is an endless deterministic byte stream; byte k is the same
// whatever the read sizes.
type pattern struct{ k uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.k*31 + p.k>>9)
		p.k++
	}
	return len(b), nil
}

func patternSum(n int64) []byte {
	h := sha256.New()
	io.CopyBuffer(h, io.LimitReader(&pattern{}, n), make([]byte, 1<<20))
	return h.Sum(nil)
}

// streamBackend serves GET /download?n=N (a Content-Length body) and POST
// /upload (answers with the sha256 of what it read) and POST /echo
// (full-duplex echo, chunked back).
func streamBackend() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyBuffer(w, io.LimitReader(&pattern{}, n), make([]byte, 256<<10))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.CopyBuffer(h, r.Body, make([]byte, 256<<10))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("X-Bytes", strconv.FormatInt(n, 10))
		io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		io.CopyBuffer(w, r.Body, make([]byte, 256<<10))
	})
	return mux
}

func TestStreamingBodiesKeepProxyMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams hundreds of MiB")
	}
	size := int64(256 << 20)
	if *bigBodies {
		size = 1 << 30
	}
	b := startBackend(t, streamBackend())
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	writeRoutes(t, routes, b.addr)
	p := startProxy(t, routes)
	want := patternSum(size)
	base := "http://" + p.addr
	client := &http.Client{} // no timeout: these take a while under -race

	do := func(method, path string, body io.Reader, length int64) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("X-Found-Cluster", depID)
		req.ContentLength = length
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: status %d", method, path, resp.StatusCode)
		}
		return resp
	}
	check := func(what string, r io.Reader) {
		t.Helper()
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
			t.Errorf("%s: %d bytes, err %v, digest match %v; want %d intact bytes", what, n, err, bytes.Equal(h.Sum(nil), want), size)
		}
	}

	// Download with a Content-Length.
	resp := do("GET", "/download?n="+strconv.FormatInt(size, 10), nil, 0)
	check("download", resp.Body)
	resp.Body.Close()

	// Upload with a Content-Length, and chunked.
	for _, length := range []int64{size, -1} {
		resp = do("POST", "/upload", io.LimitReader(&pattern{}, size), length)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != hex.EncodeToString(want) || resp.Header.Get("X-Bytes") != strconv.FormatInt(size, 10) {
			t.Errorf("upload (Content-Length %d): instance read %s bytes, digest %s; want %d bytes, %x", length, resp.Header.Get("X-Bytes"), got, size, want)
		}
	}

	// Both ways at once: a full-duplex echo.
	resp = do("POST", "/echo", io.LimitReader(&pattern{}, size), -1)
	check("echo", resp.Body)
	resp.Body.Close()

	rss := p.peakRSS(t)
	t.Logf("streamed %d MiB each way; proxy peak RSS %.1f MiB", size>>20, float64(rss)/(1<<20))
	if rss > rssBound {
		t.Errorf("proxy peak RSS %.1f MiB; want under %d MiB", float64(rss)/(1<<20), rssBound>>20)
	}
}
