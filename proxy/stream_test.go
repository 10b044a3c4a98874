package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

func TestResponseWriteSizeBounds(t *testing.T) {
	for _, n := range []int{MinResponseWriteSize - 1, MaxResponseWriteSize + 1} {
		if _, err := New(Config{ResponseWriteSize: n, AccessLog: accessLogDiscard(), Logger: discardLogger()}); err == nil {
			t.Errorf("New with ResponseWriteSize %d: no error", n)
		}
	}
}

// A streamed response body reaches the client byte for byte whatever the
// write size, with and without Content-Length, including sizes that do
// not divide the body.
func TestResponseWriteSizes(t *testing.T) {
	body := make([]byte, 3<<20+7)
	for i := range body {
		body[i] = byte(i % 251)
	}
	b := startBackend(t, "big-1", func(w http.ResponseWriter, r *http.Request) {
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
	for _, size := range []int{MinResponseWriteSize, 0, 1 << 20} {
		p := startProxy(t, Config{ResponseWriteSize: size}, mustTable(t,
			&routes.Deployment{ID: depA, Kind: "es", Serving: map[string]int{"blue": 100},
				Instances: []*routes.Instance{inst("big-1", b.addr, "zone-a", "blue")}}))
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
