package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// tunnel hands the client's connection over to a goroutine pair that
// writes the 101 response (hdr) and then copies bytes both ways between
// the client and the instance until either side closes. A tunnel to an
// instance that leaves service is cut at the end of the retire grace,
// like a stream.
//
// fasthttp runs the hijack handler after the request handler returns,
// and skips it when the client connection has failed meanwhile; the
// tunnel is then closed after adoptTimeout, so that neither the
// instance's connection nor the gauge leaks.
func (s *Server) tunnel(ctx *fasthttp.RequestCtx, t *upstream.Tunnel, hdr []byte) {
	s.metrics.tunnels.Inc()
	var adopted atomic.Bool
	end := func() {
		_ = t.Close()
		s.metrics.tunnels.Dec()
	}
	time.AfterFunc(adoptTimeout, func() {
		if adopted.CompareAndSwap(false, true) {
			end()
		}
	})
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if !adopted.CompareAndSwap(false, true) {
			_ = c.Close()
			return
		}
		defer end()
		defer c.Close()
		// No deadlines: an upgraded connection may be quiet for long
		// (WebSocket pings are the application's business). A write to
		// the client that makes no progress for the client idle timeout
		// still fails (clientconn).
		_ = c.SetDeadline(time.Time{})
		if _, err := c.Write(hdr); err != nil {
			return
		}
		done := make(chan struct{}, 2)
		go func() { copyBuffered(t, c); done <- struct{}{} }()
		go func() { copyBuffered(c, t); done <- struct{}{} }()
		// Either side closed, or the tunnel was cut: end both.
		<-done
		_ = c.Close()
		_ = t.Close()
		<-done
	})
}

// adoptTimeout bounds the wait for fasthttp to start a tunnel's hijack
// handler.
const adoptTimeout = 10 * time.Second

func copyBuffered(dst io.Writer, src io.Reader) {
	bp := tunnelBufPool.Get().(*[]byte)
	_, _ = io.CopyBuffer(dst, src, *bp)
	tunnelBufPool.Put(bp)
}

var tunnelBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
