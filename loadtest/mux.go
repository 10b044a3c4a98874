package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// A muxConn is one connection of an HTTP/2 or HTTP/3 run, shared by the
// Streams workers that send on it: a transport of its own, so that it
// holds one connection to the target (a new one when the target ends it,
// with GOAWAY or otherwise). The transport retries a request that the
// target refused unprocessed (after GOAWAY, or HTTP/3's
// H3_REQUEST_REJECTED), as HTTP clients do.
type muxConn struct {
	rt    http.RoundTripper
	close func()
	// Bytes read and written on the connection and not yet charged to a
	// request: each request takes what accumulated when it ends.
	read, written atomic.Int64
}

// newMuxConn returns a connection of p's protocol; it dials on first use.
func newMuxConn(p *plan) *muxConn {
	c := &muxConn{}
	switch p.Protocol {
	case HTTP2:
		c.rt, c.close = newH2Transport(p, c)
	case HTTP3:
		c.rt, c.close = newH3Transport(p, c)
	}
	return c
}

// newH2Transport returns an HTTP/2 transport that dials p's address,
// whatever the request's URL says, and counts the connection's bytes in
// c.
func newH2Transport(p *plan, c *muxConn) (http.RoundTripper, func()) {
	cfg := p.tls.Clone()
	cfg.NextProtos = []string{http2.NextProtoTLS}
	t := &http2.Transport{
		TLSClientConfig:    cfg,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, _, _ string, cfg *tls.Config) (net.Conn, error) {
			var d net.Dialer
			raw, err := d.DialContext(ctx, "tcp", p.addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			if got := tc.ConnectionState().NegotiatedProtocol; got != http2.NextProtoTLS {
				tc.Close()
				return nil, &protocolError{got: got}
			}
			return &muxCountingConn{Conn: tc, c: c}, nil
		},
	}
	return t, t.CloseIdleConnections
}

// protocolError is an HTTP/2 connection whose server did not pick h2 by
// ALPN.
type protocolError struct{ got string }

func (e *protocolError) Error() string {
	if e.got == "" {
		return "loadtest: the server negotiated no protocol by ALPN; want h2"
	}
	return "loadtest: the server negotiated " + e.got + " by ALPN; want h2"
}

// muxCountingConn counts the bytes of a muxConn's connection.
type muxCountingConn struct {
	net.Conn
	c *muxConn
}

func (m *muxCountingConn) Read(b []byte) (int, error) {
	n, err := m.Conn.Read(b)
	m.c.read.Add(int64(n))
	return n, err
}

func (m *muxCountingConn) Write(b []byte) (int, error) {
	n, err := m.Conn.Write(b)
	m.c.written.Add(int64(n))
	return n, err
}

// muxRequest is what a worker of an HTTP/2 or HTTP/3 run sends: the
// plan's request, built once, cloned per request with the key.
type muxRequest struct {
	url    *url.URL
	header http.Header
}

func newMuxRequest(p *plan) *muxRequest {
	u, _ := url.Parse(p.URL) // checked by newPlan
	h := http.Header{"User-Agent": {"yardload"}}
	for k, vs := range p.Header {
		if http.CanonicalHeaderKey(k) != "Host" {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	return &muxRequest{url: u, header: h}
}

// muxRoundTrip sends one request with key (an index in p.keys, or -1) on
// w's muxConn until deadline, reads the whole response, and returns its
// status and the response (body consumed) for OnResponse.
func (w *worker) muxRoundTrip(key int, deadline time.Time) (*http.Response, error) {
	p := w.l.p
	ctx, cancel := context.WithDeadline(w.l.ctx, deadline)
	defer cancel()
	h := w.mreq.header.Clone()
	host := p.hostHeader
	if key >= 0 {
		if p.hosts != nil {
			host = string(p.hosts[key])
		} else {
			h[string(p.keyHeader)] = []string{p.Keys[key]}
		}
	}
	req := &http.Request{
		Method: p.method, URL: w.mreq.url, Header: h, Host: host,
	}
	if len(p.Body) > 0 {
		req.ContentLength = int64(len(p.Body))
		req.Body = io.NopCloser(bytes.NewReader(p.Body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(p.Body)), nil }
	}
	req = req.WithContext(ctx)
	resp, err := w.mc.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if w.l.p.Protocol == HTTP3 {
		// QUIC's packets are not counted: the bodies stand for them.
		w.nRead += n
		w.nWrite += int64(len(p.Body))
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// isMuxReset reports whether err is the target ending a stream or the
// connection under a request (RST_STREAM, GOAWAY, a connection error),
// which HTTP/1.1 sees as a reset or closed connection.
func isMuxReset(err error) bool {
	var se http2.StreamError
	var ge http2.GoAwayError
	var ce http2.ConnectionError
	return errors.As(err, &se) || errors.As(err, &ge) || errors.As(err, &ce) || isH3Reset(err)
}
