package zktest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// Connect opens a client session to servers, waits (at most 10s) until it
// is established, and closes it when the test ends. Its log goes to the
// test's log.
func Connect(t testing.TB, servers []string, sessionTimeout time.Duration) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(Logger(t)))
	if err != nil {
		t.Fatalf("zktest: connect %v: %v", servers, err)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				go drain(events)
				return conn
			}
		case <-deadline:
			t.Fatalf("zktest: no session with %v after 10s", servers)
		}
	}
}

func drain(events <-chan zk.Event) {
	for range events {
	}
}

// Logger returns a zk.Logger that writes to the test's log until the test
// ends, and drops lines after that (the client logs from its own
// goroutines, which may outlive the test).
func Logger(t testing.TB) zk.Logger {
	l := &testLogger{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

type testLogger struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Logf("zk: "+format, args...)
	}
}

// SessionOf returns the id and password of conn's session. go-zookeeper
// does not export the password: it is read by reflection from zk.Conn's
// unexported passwd field (go-zookeeper v1.0.4), after a load of the
// connection state that orders the read after the write. Call it while
// conn has a session (the client rewrites the password when it gets a new
// one).
func SessionOf(conn *zk.Conn) (id int64, passwd []byte, err error) {
	if conn.State() != zk.StateHasSession {
		return 0, nil, fmt.Errorf("zktest: connection is %v, not in a session", conn.State())
	}
	f := reflect.ValueOf(conn).Elem().FieldByName("passwd")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return 0, nil, errors.New("zktest: zk.Conn has no passwd field (go-zookeeper changed); cannot read the session password")
	}
	return conn.SessionID(), append([]byte(nil), f.Bytes()...), nil
}

// ExpireSession ends conn's session on the servers, as a session timeout
// would, without waiting for one: it attaches a second connection to the
// session (same id and password, which makes the server drop conn's
// connection) and closes the session from there. conn then reconnects,
// is told that its session expired (its watches and ephemeral nodes are
// gone) and starts a new session. ExpireSession returns once the session
// is closed on the servers; it does not wait for conn to notice.
func (e *Ensemble) ExpireSession(conn *zk.Conn) {
	e.t.Helper()
	id, passwd, err := SessionOf(conn)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ExpireSession(e.Servers(), id, passwd); err != nil {
		e.t.Fatalf("zktest: %v", err)
	}
}

// ExpireSession closes the session id (with its password) on one of
// servers. A session that is already gone is not an error.
func ExpireSession(servers []string, id int64, passwd []byte) error {
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			done, err := closeSession(s, id, passwd)
			if done {
				return nil
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("closing session 0x%x: %w", id, last)
}

// Wire constants of the ZooKeeper client protocol.
const (
	opCloseSession = -11
	errNone        = 0
)

// closeSession attaches to the session on server and closes it. It
// reports whether the session is gone.
func closeSession(server string, id int64, passwd []byte) (bool, error) {
	c, err := net.DialTimeout("tcp", server, time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))

	// The connect request (attach to the session) and the close-session
	// request go in one write, so that the server has the close before
	// the client that it disconnects can come back.
	var b []byte
	connect := binary.BigEndian.AppendUint32(nil, 0)      // protocol version
	connect = binary.BigEndian.AppendUint64(connect, 0)   // last zxid seen
	connect = binary.BigEndian.AppendUint32(connect, 400) // timeout (ms)
	connect = binary.BigEndian.AppendUint64(connect, uint64(id))
	connect = binary.BigEndian.AppendUint32(connect, uint32(len(passwd)))
	connect = append(connect, passwd...)
	connect = append(connect, 0) // read-only: false
	b = binary.BigEndian.AppendUint32(b, uint32(len(connect)))
	b = append(b, connect...)
	b = binary.BigEndian.AppendUint32(b, 8) // header only
	b = binary.BigEndian.AppendUint32(b, 1) // xid
	closeOp := int32(opCloseSession)
	b = binary.BigEndian.AppendUint32(b, uint32(closeOp))
	if _, err := c.Write(b); err != nil {
		return false, err
	}

	resp, err := readPacket(c)
	if err != nil {
		return false, fmt.Errorf("%s: reading the connect response: %w", server, err)
	}
	// protocol version (4), timeout (4), session id (8), password
	if len(resp) < 16 {
		return false, fmt.Errorf("%s: short connect response", server)
	}
	if binary.BigEndian.Uint64(resp[8:16]) == 0 {
		return true, nil // the server says the session is expired already
	}
	resp, err = readPacket(c)
	if err != nil {
		return false, fmt.Errorf("%s: reading the close response: %w", server, err)
	}
	// xid (4), zxid (8), err (4)
	if len(resp) < 16 {
		return false, fmt.Errorf("%s: short close response", server)
	}
	if code := int32(binary.BigEndian.Uint32(resp[12:16])); code != errNone {
		return false, fmt.Errorf("%s: close session: error %d", server, code)
	}
	return true, nil
}

func readPacket(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 1<<20 {
		return nil, fmt.Errorf("packet of %d bytes", size)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}
