package listen

import (
	"errors"
	"io"
	"net"
	"sync"
)

// prepListener is the machinery of the layers that do work on each
// connection before the server sees it (a TLS handshake, a PROXY
// protocol header, a look at the first bytes): the work runs on a
// goroutine of the connection's own, so that a slow client holds up no
// other, Accept returns the connections whose work is done, and Close
// closes those still at it.
type prepListener struct {
	net.Listener
	// admit, when not nil, runs in the accept loop first: it returns the
	// connection to go on with, and whether to prepare it, hand it to
	// Accept as it is, or (refused) drop it, closed.
	admit func(net.Conn) (net.Conn, admission)
	// prepare does the work on c, on a goroutine of its own. It returns
	// the connection to go on with, or nil when it closed c; and to, when
	// the connection is not for Accept: to is called with it, on that
	// goroutine, once the listener no longer counts it as pending.
	prepare func(c net.Conn) (nc net.Conn, to func(net.Conn))

	start sync.Once
	ready chan accepted // connections (or errors) for Accept
	done  chan struct{} // closed by Close

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	closed  bool
	pending map[net.Conn]struct{} // connections being prepared
}

// admission is what admit decides for a connection.
type admission uint8

const (
	admitPrepare admission = iota
	admitDirect
	admitRefused
)

type accepted struct {
	c   net.Conn
	err error
}

func newPrepListener(ln net.Listener, admit func(net.Conn) (net.Conn, admission), prepare func(net.Conn) (net.Conn, func(net.Conn))) *prepListener {
	return &prepListener{
		Listener: ln,
		admit:    admit,
		prepare:  prepare,
		ready:    make(chan accepted),
		done:     make(chan struct{}),
		pending:  make(map[net.Conn]struct{}),
	}
}

// Accept returns the next connection that passed the layer.
func (l *prepListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close closes the listener and the connections still being prepared.
func (l *prepListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.Listener.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	return l.closeErr
}

func (l *prepListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !l.deliver(accepted{err: err}) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // the server decides whether to go on
			}
			return
		}
		what := admitPrepare
		if l.admit != nil {
			c, what = l.admit(c)
		}
		switch what {
		case admitRefused:
			c.Close()
			continue
		case admitDirect:
			if !l.deliver(accepted{c: c}) {
				c.Close()
			}
			continue
		}
		if !l.track(c) {
			c.Close()
			return
		}
		go l.run(c)
	}
}

// run prepares c and hands the result on.
func (l *prepListener) run(c net.Conn) {
	nc, to := l.prepare(c)
	l.untrack(c)
	switch {
	case nc == nil:
	case to != nil:
		to(nc)
	case !l.deliver(accepted{c: nc}):
		nc.Close()
	}
}

// deliver hands a to Accept; false once the listener is closed.
func (l *prepListener) deliver(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		return false
	}
}

// track records c as pending; false when the listener is closed.
func (l *prepListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *prepListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

// layerConn is a connection after a layer that read from it (the PROXY
// protocol's header, the look for HTTP/2's preface). It carries the
// wrapped connection's record (or one of its own when that has none),
// returns first the bytes the layer read past what it took, and gives
// the header's client, if any, as its RemoteAddr.
type layerConn struct {
	net.Conn
	info   *Info
	own    Info     // the record, when the wrapped connection has none
	remote net.Addr // the header's client; nil: the wrapped connection's peer
	rest   []byte
}

func (c *layerConn) Info() *Info { return c.info }

func (c *layerConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address.
func (c *layerConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// ReadFrom writes r to the connection the way the wrapped connection does
// (splicing, large writes), when it can.
func (c *layerConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite half-closes the connection, when the wrapped one can.
func (c *layerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
