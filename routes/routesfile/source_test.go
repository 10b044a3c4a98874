package routesfile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
)

// routesYAML is a good routes file; files for different ports have the same
// size.
func routesYAML(port int) string {
	return fmt.Sprintf(`domain: example.test
deployments:
  - id: 7f3a9c2e51d04b8e
    kind: es
    serving: {blue: 100}
    instances:
      - {id: i-0001, addr: "127.0.0.1:%d", zone: zone-a, generation: blue}
`, port)
}

const badYAML = `domain: example.test
deployments:
  - id: 7f3a9c2e51d04b8e
    kind: es
    serving: {blue: 100}
    instances:
      - {id: i-0001, addr: "foo", zone: zone-a, generation: blue}
`

// recSink records what a source tells it.
type recSink struct {
	mu      sync.Mutex
	applied []*routes.Table
	rejects []error
	sources []string
}

func (s *recSink) Apply(t *routes.Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = append(s.applied, t)
}

func (s *recSink) Reject(source string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects = append(s.rejects, err)
	s.sources = append(s.sources, source)
}

// get returns copies of what the sink has seen.
func (s *recSink) get() ([]*routes.Table, []error, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*routes.Table(nil), s.applied...), append([]error(nil), s.rejects...), append([]string(nil), s.sources...)
}

// counts returns the number of tables applied, the last applied version,
// and the number of rejects.
func (s *recSink) counts() (applied int, version uint64, rejects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.applied); n > 0 {
		version = s.applied[n-1].Version
	}
	return len(s.applied), version, len(s.rejects)
}

// logBuf is a log destination that tests can read while Run writes.
type logBuf struct{ testutil.Buffer }

// count returns how many log lines contain every one of subs.
func (l *logBuf) count(subs ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// seen bounds the wait for the source to notice a change: it polls every
// few milliseconds.
const seen = 5 * time.Second

// wantCounts waits until the sink has seen exactly applied tables (the last
// of version) and rejects.
func wantCounts(t *testing.T, sink *recSink, applied int, version uint64, rejects int) {
	t.Helper()
	testutil.Eventually(t, seen, fmt.Sprintf("%d applied (version %d), %d rejected", applied, version, rejects), func() bool {
		a, v, r := sink.counts()
		return a == applied && v == version && r == rejects
	})
}

// settle lets a few polls happen, for checks that nothing more arrives.
func settle(interval time.Duration) { time.Sleep(10 * interval) }

// write replaces the file by rename, as config management does: a poll
// never sees it half-written.
func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace overwrites the file's bytes without truncating it (data
// must be as long as the file): same inode, and no moment where a poll
// would see it empty.
func writeInPlace(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// start runs src until the test ends and checks that Run returns nil.
func start(t *testing.T, src *Source, sink routes.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	})
}

func newSource(t *testing.T, interval time.Duration) (*Source, *logBuf) {
	logs := &logBuf{}
	return &Source{
		Path:     filepath.Join(t.TempDir(), "routes.yaml"),
		Interval: interval,
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	}, logs
}

func TestSourceLoad(t *testing.T) {
	src, _ := newSource(t, 0)
	write(t, src.Path, routesYAML(19201))
	tb, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	if tb.Version != 1 || tb.Source != "file:"+src.Path || tb.LoadedAt.IsZero() {
		t.Errorf("Version, Source, LoadedAt = %d, %q, %v; want 1, %q, now", tb.Version, tb.Source, tb.LoadedAt, "file:"+src.Path)
	}
	if tb, err = src.Load(); err != nil || tb.Version != 1 {
		t.Errorf("Load of the same content = version %d, %v; want 1, nil", tb.Version, err)
	}
	write(t, src.Path, badYAML)
	if _, err = src.Load(); !errors.Is(err, routes.ErrInvalid) || !strings.HasPrefix(err.Error(), src.Path+":7: ") {
		t.Errorf("Load of a bad file = %v; want routes.ErrInvalid naming %s:7", err, src.Path)
	}
	write(t, src.Path, routesYAML(19202))
	if tb, err = src.Load(); err != nil || tb.Version != 2 {
		t.Errorf("Load of new content = version %d, %v; want 2, nil", tb.Version, err)
	}
	os.Remove(src.Path)
	if _, err = src.Load(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v; want os.ErrNotExist", err)
	}
}

func TestSourceRunGoodBadGood(t *testing.T) {
	const interval = 5 * time.Millisecond
	src, logs := newSource(t, interval)
	write(t, src.Path, routesYAML(19201))
	sink := &recSink{}
	start(t, src, sink)
	wantCounts(t, sink, 1, 1, 0)

	write(t, src.Path, badYAML)
	wantCounts(t, sink, 1, 1, 1)
	settle(interval) // the same bad content is reported once
	wantCounts(t, sink, 1, 1, 1)
	_, rejects, sources := sink.get()
	if !errors.Is(rejects[0], routes.ErrInvalid) || sources[0] != "file:"+src.Path {
		t.Errorf("Reject(%q, %v); want file:%s and routes.ErrInvalid", sources[0], rejects[0], src.Path)
	}
	line := fmt.Sprintf(`path=%s error="%s:7: deployment`, src.Path, src.Path)
	if n := logs.count("level=ERROR", "routes file rejected", line); n != 1 {
		t.Errorf("%d error lines with %s; want 1. Log:\n%s", n, line, logs)
	}

	write(t, src.Path, routesYAML(19202))
	wantCounts(t, sink, 2, 2, 1)
	applied, _, _ := sink.get()
	if got := applied[1].Deployments()[0].Instances[0].Addr; got != "127.0.0.1:19202" {
		t.Errorf("applied addr %s; want 127.0.0.1:19202", got)
	}

	// Rewriting the same bytes is not a new table.
	write(t, src.Path, routesYAML(19202))
	settle(interval)
	wantCounts(t, sink, 2, 2, 1)
}

func TestSourceLoadThenRun(t *testing.T) {
	const interval = 5 * time.Millisecond
	src, _ := newSource(t, interval)
	write(t, src.Path, routesYAML(19201))
	if _, err := src.Load(); err != nil {
		t.Fatal(err)
	}
	sink := &recSink{}
	start(t, src, sink)
	settle(interval) // Run reports only what changes after Load
	wantCounts(t, sink, 0, 0, 0)
	write(t, src.Path, routesYAML(19202))
	wantCounts(t, sink, 1, 2, 0)
}

// Editors and config management replace the file by rename. The new file
// can have the old one's size and mtime; only its identity differs.
func TestSourceRenameReplace(t *testing.T) {
	const interval = 5 * time.Millisecond
	src, _ := newSource(t, interval)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	write(t, src.Path, routesYAML(19201))
	if err := os.Chtimes(src.Path, old, old); err != nil {
		t.Fatal(err)
	}
	sink := &recSink{}
	start(t, src, sink)
	wantCounts(t, sink, 1, 1, 0)

	tmp := src.Path + ".tmp"
	write(t, tmp, routesYAML(19202))
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, src.Path); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, sink, 2, 2, 0)
}

// A second write within the file system's mtime tick can leave size and
// mtime as they were; a recently modified file is re-read on every poll.
func TestSourceRacyRewrite(t *testing.T) {
	const interval = 5 * time.Millisecond
	src, _ := newSource(t, interval)
	// A whole-second mtime that stays within racyWindow of now for the
	// whole test: one just past would leave 1-2s, and a loaded machine can
	// stall the test for that long.
	tick := time.Now().Truncate(time.Second).Add(time.Minute)
	write(t, src.Path, routesYAML(19201))
	if err := os.Chtimes(src.Path, tick, tick); err != nil {
		t.Fatal(err)
	}
	sink := &recSink{}
	start(t, src, sink)
	wantCounts(t, sink, 1, 1, 0)

	writeInPlace(t, src.Path, routesYAML(19202)) // same size, same inode
	if err := os.Chtimes(src.Path, tick, tick); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, sink, 2, 2, 0)
}

func TestSourceMissing(t *testing.T) {
	const interval = 5 * time.Millisecond
	src, logs := newSource(t, interval)
	write(t, src.Path, routesYAML(19201))
	sink := &recSink{}
	start(t, src, sink)
	wantCounts(t, sink, 1, 1, 0)

	if err := os.Remove(src.Path); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, sink, 1, 1, 1)
	settle(interval) // reported once while it stays missing
	wantCounts(t, sink, 1, 1, 1)
	if _, rejects, _ := sink.get(); !errors.Is(rejects[0], os.ErrNotExist) {
		t.Errorf("Reject(%v); want os.ErrNotExist", rejects[0])
	}
	if n := logs.count("level=ERROR", "path="+src.Path, "no such file"); n != 1 {
		t.Errorf("%d error lines for the missing file; want 1. Log:\n%s", n, logs)
	}

	// Back as it was: nothing new to apply.
	write(t, src.Path, routesYAML(19201))
	testutil.Eventually(t, seen, "the restored log line", func() bool { return logs.count("back to the table in use") == 1 })
	wantCounts(t, sink, 1, 1, 1)

	write(t, src.Path, routesYAML(19202))
	wantCounts(t, sink, 2, 2, 1)
}

func TestSourceReloadSignal(t *testing.T) {
	src, logs := newSource(t, time.Hour) // only the signal triggers a look
	reload := make(chan os.Signal)
	src.Reload = reload
	write(t, src.Path, routesYAML(19201))
	sink := &recSink{}
	start(t, src, sink)
	wantCounts(t, sink, 1, 1, 0)

	write(t, src.Path, routesYAML(19202))
	reload <- os.Interrupt
	wantCounts(t, sink, 2, 2, 0)

	// Unchanged content: no new table, no error.
	reload <- os.Interrupt
	testutil.Eventually(t, seen, "the unchanged log line", func() bool { return logs.count("routes file unchanged", "version=2") == 1 })
	wantCounts(t, sink, 2, 2, 0)

	// A refused file is reported again on each forced reload.
	write(t, src.Path, badYAML)
	reload <- os.Interrupt
	wantCounts(t, sink, 2, 2, 1)
	reload <- os.Interrupt
	wantCounts(t, sink, 2, 2, 2)

	write(t, src.Path, routesYAML(19203))
	reload <- os.Interrupt
	wantCounts(t, sink, 3, 3, 2)
}

func TestSourceRunReturnsOnCancel(t *testing.T) {
	src, _ := newSource(t, time.Hour)
	write(t, src.Path, routesYAML(19201))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Run(ctx, &recSink{}); err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
	if err := (&Source{}).Run(context.Background(), &recSink{}); err == nil {
		t.Errorf("Run without Path = nil; want an error")
	}
}
