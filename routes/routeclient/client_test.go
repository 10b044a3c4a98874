package routeclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routeserver"
)

// sink records what a Source delivers.
type sink struct {
	mu      sync.Mutex
	tables  []*routes.Table
	rejects []error
}

func (k *sink) Apply(t *routes.Table) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tables = append(k.tables, t)
}

func (k *sink) Reject(_ string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rejects = append(k.rejects, err)
}

func (k *sink) last() *routes.Table {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.tables) == 0 {
		return nil
	}
	return k.tables[len(k.tables)-1]
}

// seen bounds the wait for something the route server or the source does in
// milliseconds: a loaded machine running the race detector can stall
// either for seconds.
const seen = 10 * time.Second

func (k *sink) waitVersion(t *testing.T, v uint64) *routes.Table {
	t.Helper()
	var tb *routes.Table
	testutil.EventuallyErr(t, seen, fmt.Sprintf("version %d applied", v), func() error {
		switch tb = k.last(); {
		case tb == nil:
			return errors.New("no table")
		case tb.Version != v:
			return fmt.Errorf("have version %d", tb.Version)
		}
		return nil
	})
	return tb
}

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func input(version uint64, addrs ...string) routeserver.Input {
	deps := map[string]*routes.DeploymentSpec{}
	for i, a := range addrs {
		id := fmt.Sprintf("%08x", i+1)
		deps[id] = &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-1", Addr: a, Zone: "zone-a", Generation: "blue"}}}
	}
	return routeserver.Input{Version: version, Domain: "example.test", Deployments: deps, Synced: true}
}

// startServer runs a route server on loopback.
func startServer(t *testing.T, name string) (*routeserver.Server, string, context.CancelFunc) {
	t.Helper()
	s, err := routeserver.New(routeserver.Config{Name: name, Listen: "127.0.0.1:0", MaxWait: 10 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-s.Ready()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, "http://" + s.Addr().String(), stop
}

func runSource(t *testing.T, src *Source) *sink {
	t.Helper()
	k := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

func TestFollowsChangesWithDeltas(t *testing.T) {
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(100, "127.0.0.1:1", "127.0.0.1:2"))
	src := &Source{URLs: []string{url}, ProxyID: "p1", Zone: "zone-a", Logger: quiet}
	k := runSource(t, src)
	k.waitVersion(t, 100)

	// A change reaches the proxy promptly: the held poll answers it, not a
	// poll after MaxWait (10s).
	start := time.Now()
	srv.Update(input(105, "127.0.0.1:1", "127.0.0.1:9"))
	tb := k.waitVersion(t, 105)
	took := time.Since(start)
	t.Logf("change arrived after %v", took)
	if took > 3*time.Second {
		t.Errorf("change took %v to arrive; want well under 1s", took)
	}
	if got := tb.Lookup([]byte("00000002")).Instances[0].Addr; got != "127.0.0.1:9" {
		t.Errorf("addr after delta = %s", got)
	}
	st := srv.Status()
	if len(st.Proxies) != 1 || st.Proxies[0].ID != "p1" || st.Proxies[0].Zone != "zone-a" {
		t.Fatalf("route server status proxies = %+v", st.Proxies)
	}
	// The proxy reports its applied version with its next poll.
	testutil.Eventually(t, seen, "the route server sees the proxy at 105", func() bool { return srv.Status().Proxies[0].Version == 105 })
	if p := srv.Status().Proxies[0]; p.Version != 105 || !p.Current {
		t.Errorf("route server sees proxy at %d current=%v; want 105 current", p.Version, p.Current)
	}
}

func TestStaleAndEmptyTables(t *testing.T) {
	srv, url, _ := startServer(t, "rs1")
	src := &Source{URLs: []string{url}, ProxyID: "p1", Logger: quiet}
	k := runSource(t, src)
	srv.Update(input(10, "127.0.0.1:1"))
	k.waitVersion(t, 10)

	// The store is lost: same table, marked stale, and the proxy learns it.
	in := input(10, "127.0.0.1:1")
	in.Stale = true
	srv.Update(in)
	testutil.Eventually(t, seen, "the proxy learns the table is stale", func() bool { return src.Status().Stale })
	if !srv.Status().Stale {
		t.Errorf("the route server is not stale")
	}
	// An empty table is refused, by Update itself; the last good one keeps
	// serving.
	srv.Update(routeserver.Input{Version: 20, Domain: "example.test", Synced: true, Deployments: map[string]*routes.DeploymentSpec{}})
	if st := srv.Status(); st.Version != 10 || st.Deployments != 1 {
		t.Errorf("after an empty table the server serves version %d with %d deployments; want 10 and 1", st.Version, st.Deployments)
	}
}

// gate stands between a Source and its route servers: while closed it
// holds each request before sending it (or fails it), so that a test can
// change the route server while no poll is there.
type gate struct {
	mu     sync.Mutex
	closed chan struct{} // nil while open
	fail   bool
	held   atomic.Int32 // requests that reached the gate while it was closed
	polls  atomic.Int32 // table polls (GET /v1/routes) let through while it was open
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	closed, fail := g.closed, g.fail
	g.mu.Unlock()
	if closed != nil {
		g.held.Add(1)
		if fail {
			return nil, errors.New("gate closed")
		}
		select {
		case <-closed:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	} else if r.Method == http.MethodGet && r.URL.Path == "/v1/routes" {
		g.polls.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (g *gate) close(fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.fail = make(chan struct{}), fail
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.closed)
	g.closed = nil
}

// A route server that loses the store while no poll of the proxy's is
// there answers the next poll at once: it is held up to MaxWait (10s)
// only when the proxy already knows the staleness.
func TestStalenessChangedBetweenPolls(t *testing.T) {
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(10, "127.0.0.1:1"))
	g := &gate{}
	src := &Source{URLs: []string{url}, ProxyID: "p1", Logger: quiet, Client: &http.Client{Transport: g}}
	k := runSource(t, src)
	k.waitVersion(t, 10)
	// The poll after the one that brought version 10 must be past the gate
	// (held at the route server) before the gate closes; closed sooner, the
	// gate would hold that poll and version 11 would never come.
	testutil.Eventually(t, seen, "the poll after version 10 past the gate", func() bool { return g.polls.Load() >= 2 })

	g.close(false)
	srv.Update(input(11, "127.0.0.1:2")) // answers the held poll
	k.waitVersion(t, 11)
	testutil.Eventually(t, seen, "the next poll at the gate", func() bool { return g.held.Load() == 1 })
	in := input(11, "127.0.0.1:2")
	in.Stale = true
	srv.Update(in)
	start := time.Now()
	g.open()
	testutil.Eventually(t, seen, "the proxy learns the table is stale", func() bool { return src.Status().Stale })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("staleness took %v to arrive; want well under 1s, not the 10s a held poll waits", took)
	}
}

// A table loaded from disk is confirmed by the first route server that
// answers with the same table, at once rather than after a held poll.
func TestTableFromDiskConfirmedAtOnce(t *testing.T) {
	dir := t.TempDir()
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(70, "127.0.0.1:1"))
	saveSnapshot(t, url, dir, 70)

	g := &gate{}
	g.close(true)
	src := &Source{URLs: []string{url}, ProxyID: "p2", CacheDir: dir, StartupTimeout: 200 * time.Millisecond,
		RetryMax: 100 * time.Millisecond, Logger: quiet, Client: &http.Client{Transport: g}}
	k := runSource(t, src)
	k.waitVersion(t, 70)
	if st := src.Status(); !st.FromDisk || st.Connected {
		t.Fatalf("status with the route server unreachable = %+v; want from disk, not connected", st)
	}
	start := time.Now()
	g.open()
	testutil.Eventually(t, seen, "the route server confirms the table", func() bool { st := src.Status(); return st.Connected && !st.FromDisk })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("confirmation took %v; want well under 1s, not the 10s a held poll waits", took)
	}
	if st := src.Status(); st.Stale || st.Version != 70 {
		t.Errorf("status after confirmation = %+v; want version 70, not stale", st)
	}
}

func TestFailoverBetweenRouteServers(t *testing.T) {
	rs1, url1, stop1 := startServer(t, "rs1")
	rs2, url2, _ := startServer(t, "rs2")
	rs1.Update(input(50, "127.0.0.1:1"))
	rs2.Update(input(50, "127.0.0.1:1"))
	src := &Source{URLs: []string{url1, url2}, ProxyID: "p1", Logger: quiet, RetryMax: 100 * time.Millisecond}
	k := runSource(t, src)
	k.waitVersion(t, 50)
	stop1()
	rs2.Update(input(60, "127.0.0.1:2"))
	k.waitVersion(t, 60)
	if got := src.Status().Server; got != url2 {
		t.Errorf("following %s; want %s", got, url2)
	}
}

// saveSnapshot runs a Source with CacheDir dir against the route server at
// url until it applies version v, and stops it (which flushes the
// snapshot to disk).
func saveSnapshot(t *testing.T, url, dir string, v uint64) {
	t.Helper()
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	k := &sink{}
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	k.waitVersion(t, v)
	cancel()
	<-done
}

func TestServesSnapshotFromDiskWhenNoRouteServerAnswers(t *testing.T) {
	dir := t.TempDir()
	srv, url, stop := startServer(t, "rs1")
	srv.Update(input(70, "127.0.0.1:1", "127.0.0.1:2"))
	saveSnapshot(t, url, dir, 70)
	stop()

	// Every route server is gone; a new proxy starts from the disk.
	second := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, StartupTimeout: 300 * time.Millisecond, Logger: quiet}
	start := time.Now()
	k2 := runSource(t, second)
	tb := k2.waitVersion(t, 70)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("serving from disk took %v", took)
	}
	if tb.Len() != 2 || !second.Status().FromDisk || !second.Status().Stale {
		t.Errorf("from disk: %d deployments, status %+v", tb.Len(), second.Status())
	}

	// A corrupt snapshot is refused with a clear error, nothing applied.
	path := filepath.Join(dir, SnapshotFile)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0x20
	os.WriteFile(path, b, 0o644)
	third := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, StartupTimeout: 100 * time.Millisecond, Logger: quiet}
	k3 := runSource(t, third)
	testutil.Eventually(t, seen, "corrupt snapshot refused", func() bool {
		k3.mu.Lock()
		defer k3.mu.Unlock()
		return len(k3.rejects) != 0
	})
	k3.mu.Lock()
	defer k3.mu.Unlock()
	if len(k3.tables) != 0 || len(k3.rejects) != 1 {
		t.Errorf("corrupt snapshot: %d tables applied, %d rejects; want 0 and 1", len(k3.tables), len(k3.rejects))
	}
}

func TestRouteServerAnswers503BeforeItsFirstTable(t *testing.T) {
	_, url, _ := startServer(t, "rs1")
	src := &Source{URLs: []string{url}, ProxyID: "p1", Logger: quiet, RetryMax: 50 * time.Millisecond}
	runSource(t, src)
	testutil.Eventually(t, seen, "an error before any table", func() bool { return src.Status().LastError != "" })
	if st := src.Status(); st.Connected || st.LastError == "" {
		t.Errorf("status before any table = %+v; want not connected with an error", st)
	}
}

// The proxy's per-generation counts reach the route server it follows,
// again when they change, and at the other route server after a failover.
func TestReportsGenerationCounts(t *testing.T) {
	rs1, url1, stop1 := startServer(t, "rs1")
	rs2, url2, _ := startServer(t, "rs2")
	rs1.Update(input(50, "127.0.0.1:1"))
	rs2.Update(input(50, "127.0.0.1:1"))
	var mu sync.Mutex
	counts := []routes.GenerationCount{{Deployment: "00000001", Generation: "green", Requests: 10, Errors: 1}}
	report := func() []routes.GenerationCount {
		mu.Lock()
		defer mu.Unlock()
		return append([]routes.GenerationCount(nil), counts...)
	}
	src := &Source{URLs: []string{url1, url2}, ProxyID: "p1", Zone: "zone-a", Logger: quiet,
		RetryMax: 100 * time.Millisecond, Report: report, ReportInterval: 20 * time.Millisecond}
	k := runSource(t, src)
	k.waitVersion(t, 50)
	// The table reaches the sink just before the status names its server.
	testutil.Eventually(t, seen, "the route server followed", func() bool { return src.Status().Server != "" })

	following, other := rs1, rs2
	if src.Status().Server == url2 {
		following, other = rs2, rs1
	}
	waitReport := func(srv *routeserver.Server, requests uint64) {
		t.Helper()
		testutil.EventuallyErr(t, seen, fmt.Sprintf("a report of p1 with %d requests to green", requests), func() error {
			r := srv.Status().Reports
			if len(r) == 1 && r[0].Proxy == "p1" && r[0].Zone == "zone-a" &&
				len(r[0].Generations) == 1 && r[0].Generations[0].Requests == requests {
				return nil
			}
			return fmt.Errorf("route server reports %+v", r)
		})
	}
	waitReport(following, 10)
	if r := other.Status().Reports; len(r) != 0 {
		t.Errorf("the route server not followed got reports %+v", r)
	}
	mu.Lock()
	counts[0].Requests, counts[0].Errors = 25, 3
	mu.Unlock()
	waitReport(following, 25)

	if following == rs1 {
		stop1()
		rs2.Update(input(60, "127.0.0.1:2"))
		k.waitVersion(t, 60)
		mu.Lock()
		counts[0].Requests = 30
		mu.Unlock()
		waitReport(rs2, 30)
	}
}

// fromDisk starts a Source on dir with no route server to answer and
// returns the table it serves from the disk.
func fromDisk(t *testing.T, dir string) *routes.Table {
	t.Helper()
	src := &Source{URLs: []string{"http://127.0.0.1:1"}, ProxyID: "p2", CacheDir: dir, StartupTimeout: 50 * time.Millisecond, Logger: quiet}
	k := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	defer func() { cancel(); <-done }()
	var tb *routes.Table
	testutil.EventuallyErr(t, seen, "a table from the disk", func() error {
		if tb = k.last(); tb == nil {
			return errors.New("none yet")
		}
		return nil
	})
	return tb
}

// addrOf is the address of deployment 00000001's instance.
func addrOf(tb *routes.Table) string {
	d := tb.Lookup([]byte("00000001"))
	if d == nil || len(d.Instances) == 0 {
		return ""
	}
	return d.Instances[0].Addr
}

// A change costs the disk what it changed: the first table is written
// whole at once, each change after it is appended to the journal, and a
// restart serves the snapshot with the journal's changes. (At 100 000
// deployments each write of the whole table encodes and fsyncs 32 MB.)
// A torn last record, or a journal of another snapshot, costs only what
// it holds.
func TestDiskCopyJournalsChanges(t *testing.T) {
	dir := t.TempDir()
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(10, "127.0.0.1:10"))
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Hour, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	k := &sink{}
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	k.waitVersion(t, 10)
	testutil.Eventually(t, seen, "the first table is written at once", func() bool { return src.saves.Load() == 1 })
	for v := uint64(11); v <= 15; v++ {
		srv.Update(input(v, fmt.Sprintf("127.0.0.1:%d", v)))
		k.waitVersion(t, v)
	}
	testutil.Eventually(t, seen, "5 changes journaled", func() bool { return src.journaled.Load() == 5 })
	cancel()
	<-done
	if n := src.saves.Load(); n != 1 {
		t.Errorf("%d snapshot writes; want 1 (the changes are in the journal)", n)
	}
	if m, err := wire.ReadFile(filepath.Join(dir, SnapshotFile)); err != nil || m.Version != 10 {
		t.Fatalf("snapshot on disk: %v", err)
	}
	tb := fromDisk(t, dir)
	if tb.Version != 15 || addrOf(tb) != "127.0.0.1:15" {
		t.Fatalf("from disk: version %d, address %s; want 15 and the latest address", tb.Version, addrOf(tb))
	}

	// A torn last record: the changes before it.
	jp := filepath.Join(dir, JournalFile)
	b, err := os.ReadFile(jp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jp, b[:len(b)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if tb := fromDisk(t, dir); tb.Version != 14 || addrOf(tb) != "127.0.0.1:14" {
		t.Errorf("torn last record: version %d, address %s; want 14", tb.Version, addrOf(tb))
	}
	// A flipped bit in a record: the changes before that record.
	c := slices.Clone(b)
	first := bytes.IndexByte(c, '\n') + 1
	c[first+8+5] ^= 0x01 // in the first record's payload
	if err := os.WriteFile(jp, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if tb := fromDisk(t, dir); tb.Version != 10 || addrOf(tb) != "127.0.0.1:10" {
		t.Errorf("corrupt first record: version %d; want the snapshot's, 10", tb.Version)
	}
	// A journal that follows another snapshot (a crash between the two
	// writes): the snapshot alone.
	other := bytes.Replace(b, []byte(journalMagic+"10 "), []byte(journalMagic+"9 "), 1)
	if err := os.WriteFile(jp, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if tb := fromDisk(t, dir); tb.Version != 10 {
		t.Errorf("journal of another snapshot: version %d; want 10", tb.Version)
	}
}

// The snapshot is written again once the journal has grown to its limit
// (and the spacing of snapshot writes allows), and the journal starts
// again from it; what comes after is journaled again.
func TestDiskCopyCompactsTheJournal(t *testing.T) {
	dir := t.TempDir()
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(10, "127.0.0.1:10"))
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Millisecond, Logger: quiet, compactAt: 600}
	ctx, cancel := context.WithCancel(context.Background())
	k := &sink{}
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	k.waitVersion(t, 10)
	testutil.Eventually(t, seen, "the first table is written", func() bool { return src.saves.Load() == 1 })
	// A compaction waits for the spacing after the last snapshot write
	// (saveSpacing times as long as it took, which a loaded disk makes
	// long): changes come until one is seen, or 2 000 changes (with about
	// 100 bytes each, past the limit many times over).
	last := uint64(10)
	for v := uint64(11); v <= 2010 && (v <= 30 || src.saves.Load() < 2); v++ {
		srv.Update(input(v, fmt.Sprintf("127.0.0.1:%d", v)))
		k.waitVersion(t, v)
		last = v
		if v > 30 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	testutil.Eventually(t, seen, "every change written", func() bool {
		m, err := wire.ReadFile(filepath.Join(dir, SnapshotFile))
		return err == nil && (m.Version == last || src.journaled.Load() > 0 && fromDiskVersion(dir) == last)
	})
	cancel()
	<-done
	saves := src.saves.Load()
	if saves < 2 {
		t.Errorf("%d snapshot writes for %d changes with a journal limit of 600 bytes; want the journal compacted", saves, last-10)
	}
	// The journal follows the snapshot now on disk.
	m, err := wire.ReadFile(filepath.Join(dir, SnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s%d %s\n", journalMagic, m.Version, m.Hash); !bytes.HasPrefix(b, []byte(want)) {
		t.Errorf("journal starts %q; want %q", b[:min(len(b), 80)], want)
	}
	if tb := fromDisk(t, dir); tb.Version != last || addrOf(tb) != fmt.Sprintf("127.0.0.1:%d", last) {
		t.Errorf("from disk: version %d, address %s; want %d", tb.Version, addrOf(tb), last)
	}
	t.Logf("%d snapshot writes, %d changes journaled", saves, src.journaled.Load())
}

// fromDiskVersion is the version that the snapshot and journal in dir
// give, 0 if they give none.
func fromDiskVersion(dir string) uint64 {
	m, err := wire.ReadFile(filepath.Join(dir, SnapshotFile))
	if err != nil {
		return 0
	}
	st, err := wire.Apply(nil, m)
	if err != nil {
		return 0
	}
	st, _, _ = replayJournal(dir, st)
	return st.Version
}

// At start, a route server that has answered but takes longer than
// StartupTimeout to send its table is not cut off for the table on disk:
// at 100 000 deployments the full table took about 3.3 s to arrive, past
// the 3 s after which the proxy dropped it, served its disk copy and
// fetched the table again. One that does not answer at all still is.
func TestStartupTimeoutCoversTheAnswerNotTheTable(t *testing.T) {
	table := func(v uint64) *wire.Snapshot {
		in := input(v, "127.0.0.1:1", fmt.Sprintf("127.0.0.1:%d", v))
		return wire.NewSnapshot(nil, v, in.Domain, nil, in.Deployments)
	}
	onDisk, served := table(5), table(9)
	for _, tc := range []struct {
		name      string
		headers   bool // the server answers (sends headers) at once
		firstSeen uint64
	}{
		{"answers at once, body slow", true, 9},
		{"answers late", false, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := wire.WriteFile(filepath.Join(dir, SnapshotFile), onDisk.Full(false)); err != nil {
				t.Fatal(err)
			}
			body := served.Full(false)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get(wire.ParamVersion) != "" {
					w.WriteHeader(http.StatusNotModified) // later polls: nothing new
					return
				}
				w.Header().Set(wire.HeaderVersion, "9")
				if tc.headers {
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
				}
				select {
				case <-time.After(600 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
				w.Write(body)
			}))
			t.Cleanup(hs.Close)
			src := &Source{URLs: []string{hs.URL}, ProxyID: "p1", CacheDir: dir, StartupTimeout: 300 * time.Millisecond, Logger: quiet}
			k := runSource(t, src)
			testutil.Eventually(t, seen, "a table applied", func() bool { return k.last() != nil })
			k.mu.Lock()
			first := k.tables[0].Version
			k.mu.Unlock()
			if first != tc.firstSeen {
				t.Errorf("first table applied: version %d; want %d", first, tc.firstSeen)
			}
		})
	}
}

// A full table (here after a failover to a route server that does not
// hold the proxy's version) is written whole at once, and the deltas
// after it are journaled: the disk never falls behind what the proxy
// serves for longer than a write takes, whatever SaveInterval says.
func TestDiskCopyFollowsAFullTableAtOnce(t *testing.T) {
	dir := t.TempDir()
	rs1, url1, stop1 := startServer(t, "rs1")
	rs2, url2, _ := startServer(t, "rs2")
	rs1.Update(input(10, "127.0.0.1:10"))
	src := &Source{URLs: []string{url1, url2}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Hour, Logger: quiet, RetryMax: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	k := &sink{}
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	defer func() { cancel(); <-done }()
	k.waitVersion(t, 10)
	testutil.Eventually(t, seen, "the first table written", func() bool { return src.saves.Load() == 1 })
	rs2.Update(input(20, "127.0.0.1:20"))
	stop1()
	k.waitVersion(t, 20) // a full table from rs2
	for v := uint64(21); v <= 25; v++ {
		rs2.Update(input(v, fmt.Sprintf("127.0.0.1:%d", v)))
		k.waitVersion(t, v)
	}
	// The snapshot is the full table (or a later version, when the
	// writer took changes that came during its write in with it), and
	// the journal holds the changes after it, not after version 10. (The
	// writer counts what it journaled after the append the disk shows.)
	var snap uint64
	testutil.Eventually(t, seen, "the disk at version 25, the changes after its snapshot journaled", func() bool {
		m, err := wire.ReadFile(filepath.Join(dir, SnapshotFile))
		if err != nil || fromDiskVersion(dir) != 25 {
			return false
		}
		snap = m.Version
		return snap >= 20 && src.journaled.Load()+snap-20 == 5
	})
	if n := src.saves.Load(); n != 2 {
		t.Errorf("%d snapshot writes; want 2 (the first table, the full one)", n)
	}
	if n := src.journaled.Load(); n+snap-20 != 5 {
		t.Errorf("%d changes journaled after a snapshot of version %d; want %d", n, snap, 25-snap)
	}
}

// A disk that refuses the table is tried again after SaveInterval, not at
// every change (each attempt encodes the whole table), and Run still ends.
func TestDiskCopyFailureWaitsBeforeTryingAgain(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, url, _ := startServer(t, "rs1")
	srv.Update(input(10, "127.0.0.1:10"))
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: notDir, SaveInterval: time.Hour, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	k := &sink{}
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	k.waitVersion(t, 10)
	testutil.Eventually(t, seen, "the first write tried", func() bool { return src.saves.Load() == 1 })
	for v := uint64(11); v <= 20; v++ {
		srv.Update(input(v, fmt.Sprintf("127.0.0.1:%d", v)))
		k.waitVersion(t, v)
	}
	if n := src.saves.Load(); n != 1 {
		t.Errorf("%d snapshot writes tried for 10 changes on a failing disk; want 1 until SaveInterval", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(seen):
		t.Fatal("Run did not return")
	}
}

// TestReadBodyHoldsTheBodyOnce reads bodies of a declared length, as a
// route server sends them: the buffer is about the body's size (the
// allocator rounds it up), not twice it; a body of another
// length than declared is read whole all the same.
func TestReadBodyHoldsTheBodyOnce(t *testing.T) {
	body := strings.Repeat("x", 3<<20)
	for _, c := range []struct {
		name   string
		length int64
	}{{"declared", int64(len(body))}, {"undeclared", -1}, {"shorter than declared", int64(len(body)) + 100}, {"longer than declared", 1 << 20}} {
		b, err := readBody(strings.NewReader(body), c.length)
		if err != nil || string(b) != body {
			t.Fatalf("%s: read %d bytes, %v; want the body", c.name, len(b), err)
		}
		if c.name == "declared" && cap(b) > len(body)+len(body)/16 {
			t.Errorf("%s: a buffer of %d bytes for a body of %d", c.name, cap(b), len(body))
		}
	}
}
