package constructor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
)

// election is one candidate in the constructors' leader election: an
// ephemeral sequential znode under <root>/constructor/election; the lowest
// is the leader, and each other candidate watches the one just below it
// (so a leader's end wakes one standby, not all).
type election struct {
	conn *zk.Conn
	dir  string
	name string // this candidate's data: the constructor's ID
	node string // our znode's name, "" until created in this session
}

const electionPrefix = "n-"

func newElection(conn *zk.Conn, root, name string) *election {
	return &election{conn: conn, dir: root + "/constructor/election", name: name}
}

// campaign makes sure we have a candidate znode in this session and
// returns whether we lead, and if not, a channel that fires when the
// candidate below us changes (then campaign again).
func (e *election) campaign() (leader bool, wait <-chan zk.Event, err error) {
	for _, p := range []string{parentOf(parentOf(e.dir)), parentOf(e.dir), e.dir} {
		if _, err := e.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return false, nil, fmt.Errorf("creating %s: %w", p, err)
		}
	}
	if e.node == "" {
		p, err := e.conn.CreateProtectedEphemeralSequential(e.dir+"/"+electionPrefix, []byte(e.name), zk.WorldACL(zk.PermAll))
		if err != nil {
			return false, nil, fmt.Errorf("joining the election: %w", err)
		}
		e.node = p[strings.LastIndexByte(p, '/')+1:]
	}
	for {
		kids, _, err := e.conn.Children(e.dir)
		if err != nil {
			return false, nil, fmt.Errorf("listing %s: %w", e.dir, err)
		}
		slices.SortFunc(kids, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
		i := slices.Index(kids, e.node)
		if i < 0 {
			// Our node is gone (our session expired and a new one began):
			// join again.
			e.node = ""
			return e.campaign()
		}
		if i == 0 {
			return true, nil, nil
		}
		ok, _, ch, err := e.conn.ExistsW(e.dir + "/" + kids[i-1])
		if err != nil {
			return false, nil, err
		}
		if ok {
			return false, ch, nil
		}
		// It went between the listing and the watch: look again.
	}
}

// still reports whether our candidate znode still exists (a leader whose
// session expired has lost it, and must stop acting).
func (e *election) still() (bool, error) {
	if e.node == "" {
		return false, nil
	}
	ok, _, err := e.conn.Exists(e.dir + "/" + e.node)
	return ok, err
}

// resign removes our candidate znode, handing the lead to the next one.
func (e *election) resign() {
	if e.node != "" {
		_ = e.conn.Delete(e.dir+"/"+e.node, -1)
		e.node = ""
	}
}

// leader returns the data (constructor ID) of the current leader.
func (e *election) leader(ctx context.Context) (string, error) {
	kids, _, err := e.conn.Children(e.dir)
	if err != nil {
		return "", err
	}
	if len(kids) == 0 {
		return "", nil
	}
	slices.SortFunc(kids, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
	data, _, err := e.conn.Get(e.dir + "/" + kids[0])
	return string(data), err
}

// seq is the sequence suffix of a candidate's name (protected names
// carry a prefix before it).
func seq(name string) string {
	if i := strings.LastIndex(name, electionPrefix); i >= 0 {
		return name[i+len(electionPrefix):]
	}
	return name
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}
