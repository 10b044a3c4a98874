package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// newH3Transport returns an HTTP/3 transport that dials p's address,
// whatever the request's URL says, over a UDP socket of its own.
func newH3Transport(p *plan, _ *muxConn) (http.RoundTripper, func()) {
	t := &http3.Transport{
		TLSClientConfig:    p.tls.Clone(), // NextProtos: set to h3 by the transport
		DisableCompression: true,
	}
	var (
		mu sync.Mutex
		qt *quic.Transport
	)
	t.Dial = func(ctx context.Context, _ string, cfg *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if qt == nil {
			udp, err := net.ListenUDP("udp", nil)
			if err != nil {
				return nil, err
			}
			qt = &quic.Transport{Conn: udp}
		}
		addr, err := net.ResolveUDPAddr("udp", p.addr)
		if err != nil {
			return nil, err
		}
		return qt.DialEarly(ctx, addr, cfg, qc)
	}
	return t, func() {
		t.Close()
		mu.Lock()
		defer mu.Unlock()
		if qt != nil {
			qt.Close()
		}
	}
}

// isH3Reset reports whether err is the target ending a request's stream
// or its QUIC connection.
func isH3Reset(err error) bool {
	var he *http3.Error
	var ae *quic.ApplicationError
	var se *quic.StreamError
	var te *quic.TransportError
	var re *quic.StatelessResetError
	return errors.As(err, &he) || errors.As(err, &ae) || errors.As(err, &se) || errors.As(err, &te) || errors.As(err, &re)
}
