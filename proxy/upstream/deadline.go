package upstream

import (
	"sync"
	"time"
)

// readDeadline is a connection's read deadline, kept so that an exchange
// can ask for a later one without moving the socket's (a runtime timer
// update and clock reads) on every request.
//
// want is the deadline the exchange asked for, set the socket's, both on
// monoNow's clock and 0 for none. set is never later than want. When it is
// earlier, a read that meets it calls readExpired, which moves it to want
// and has the read wait again; so reads fail at want, as if it had been
// set.
type readDeadline struct {
	mu        sync.Mutex
	want, set int64
	// lazy: reads call readExpired at the socket's deadline (a socket read
	// through sockio.Reader). Otherwise every deadline is set at once.
	lazy bool
}

// wantRead asks that reads fail at want; now is the time of the call (both
// monoNow). The socket's deadline stays when it is no later than want and
// at least half of want-now away; otherwise it is moved to want.
func (c *conn) wantRead(want, now int64) {
	d := &c.rd
	d.mu.Lock()
	d.want = want
	if !d.lazy || d.set == 0 || d.set > want || d.set-now < (want-now)/2 {
		d.set = want
		_ = c.Conn.SetReadDeadline(clockBase.Add(time.Duration(want)))
	}
	d.mu.Unlock()
}

// readExpired is called when a read's wait ended at the socket's deadline.
// It reports whether the wanted deadline is still ahead, after giving it
// to the socket.
func (c *conn) readExpired() bool {
	d := &c.rd
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.want == d.set || (d.want != 0 && d.want <= monoNow()) {
		return false
	}
	d.set = d.want
	var t time.Time
	if d.want != 0 {
		t = clockBase.Add(time.Duration(d.want))
	}
	_ = c.Conn.SetReadDeadline(t)
	return true
}

// SetReadDeadline sets the read deadline at once, as net.Conn does: for an
// interrupt (a time in the past), for the body goroutine, or to clear it.
func (c *conn) SetReadDeadline(t time.Time) error {
	d := &c.rd
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = 0
	if !t.IsZero() {
		d.want = monoOf(t)
	}
	d.set = d.want
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines at once.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}
