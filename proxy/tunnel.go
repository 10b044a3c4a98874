package proxy

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/switchyard/switchyard/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// tunnel hands the client's connection over, once the 101 response is
// written, to a goroutine pair that copies bytes both ways between it and
// the instance until either side closes. A tunnel to an instance that
// leaves service is cut at the end of the retire grace, like a stream.
func (s *Server) tunnel(ctx *fasthttp.RequestCtx, t *upstream.Tunnel) {
	s.metrics.tunnels.Inc()
	ctx.Hijack(func(c net.Conn) {
		defer s.metrics.tunnels.Dec()
		// No deadlines: an upgraded connection may be quiet for long
		// (WebSocket pings are the application's business).
		_ = c.SetDeadline(time.Time{})
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

func copyBuffered(dst io.Writer, src io.Reader) {
	bp := tunnelBufPool.Get().(*[]byte)
	_, _ = io.CopyBuffer(dst, src, *bp)
	tunnelBufPool.Put(bp)
}

var tunnelBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}
