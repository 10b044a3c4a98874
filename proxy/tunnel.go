package proxy

import (
	"context"
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
// the client and the instance until either side closes, nothing passes
// either way for Config.TunnelIdleTimeout, or the proxy shuts down and
// the shutdown timeout runs out. A tunnel to an instance that leaves
// service is cut at the end of the retire grace, like a stream.
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
		// (WebSocket pings are the application's business); the idle
		// timer below ends it when both ways are quiet. A write to the
		// client that makes no progress for the client idle timeout
		// still fails (clientconn).
		_ = c.SetDeadline(time.Time{})
		lt := &liveTunnel{client: c, inst: t}
		if !s.tunnels.add(lt) {
			return // shutting down: cut already
		}
		defer s.tunnels.remove(lt)
		if d := s.cfg.TunnelIdleTimeout; d > 0 {
			lt.touch()
			stop := lt.closeWhenIdle(d)
			defer stop()
		}
		if _, err := c.Write(hdr); err != nil {
			return
		}
		done := make(chan struct{}, 2)
		go func() { lt.copy(t, c); done <- struct{}{} }()
		go func() { lt.copy(c, t); done <- struct{}{} }()
		// Either side closed, or the tunnel was cut: end both.
		<-done
		lt.cut()
		<-done
	})
}

// adoptTimeout bounds the wait for fasthttp to start a tunnel's hijack
// handler.
const adoptTimeout = 10 * time.Second

// liveTunnel is an adopted tunnel: the client's connection, the
// instance's, and when bytes last passed either way.
type liveTunnel struct {
	client net.Conn
	inst   *upstream.Tunnel
	last   atomic.Int64 // monoNow at the last read that returned bytes
}

func (lt *liveTunnel) touch() { lt.last.Store(monoNow()) }

// monoNow is monotonic time in nanoseconds since clockBase.
func monoNow() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// cut closes both connections; the copies then end.
func (lt *liveTunnel) cut() {
	_ = lt.client.Close()
	_ = lt.inst.Close()
}

// copy copies src to dst until either fails, noting every read that
// returns bytes.
func (lt *liveTunnel) copy(dst io.Writer, src io.Reader) {
	bp := tunnelBufPool.Get().(*[]byte)
	defer tunnelBufPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			lt.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// closeWhenIdle cuts the tunnel once nothing has passed either way for d,
// checking when the last activity would have made it that old. stop
// cancels the check.
func (lt *liveTunnel) closeWhenIdle(d time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var timer *time.Timer
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if left := time.Duration(lt.last.Load() + int64(d) - monoNow()); left > 0 {
			timer.Reset(left)
			return
		}
		lt.cut()
	}
	mu.Lock()
	timer = time.AfterFunc(d, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}

var tunnelBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// tunnelSet is the adopted tunnels, so that shutdown can wait for them
// and cut what is left.
type tunnelSet struct {
	mu     sync.Mutex
	m      map[*liveTunnel]struct{}
	closed bool          // cut: no more tunnels
	empty  chan struct{} // closed when m empties, if a drain waits
}

// add records lt; false when the set was cut already.
func (ts *tunnelSet) add(lt *liveTunnel) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.m == nil {
		ts.m = make(map[*liveTunnel]struct{})
	}
	ts.m[lt] = struct{}{}
	return true
}

func (ts *tunnelSet) remove(lt *liveTunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.m, lt)
	if len(ts.m) == 0 && ts.empty != nil {
		close(ts.empty)
		ts.empty = nil
	}
}

// drain waits until every tunnel has ended or ctx is done, then cuts the
// tunnels left and refuses new ones. It returns how many it cut.
func (ts *tunnelSet) drain(ctx context.Context) int {
	ts.mu.Lock()
	var empty chan struct{}
	if len(ts.m) > 0 {
		empty = make(chan struct{})
		ts.empty = empty
	}
	ts.mu.Unlock()
	if empty != nil {
		select {
		case <-empty:
		case <-ctx.Done():
		}
	}
	ts.mu.Lock()
	ts.closed = true
	left := make([]*liveTunnel, 0, len(ts.m))
	for lt := range ts.m {
		left = append(left, lt)
	}
	ts.empty = nil
	ts.mu.Unlock()
	for _, lt := range left {
		lt.cut()
	}
	return len(left)
}
