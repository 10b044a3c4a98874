// Package routeclient is the proxy's side of the route stream: it follows
// route servers, fails over between them, applies each full table or delta
// as a new immutable table, and keeps the last applied table on disk so
// that a proxy can start and serve when nothing above it answers.
package routeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
)

// saveSpacing keeps the writes of the table to disk to at most 1/20 of
// the time: a write that takes d is followed by none for 20·d.
const saveSpacing = 20

// SnapshotFile is the name of the last-known-good table in the cache
// directory.
const SnapshotFile = "routes.snapshot"

// Source follows route servers. Set the fields, then call Run once.
type Source struct {
	// URLs are the route servers' base URLs ("http://host:port"); they are
	// tried in turn, starting with a random one.
	URLs []string
	// ProxyID and Zone identify this proxy to the route servers.
	ProxyID string
	Zone    string
	// CacheDir, when set, holds the last applied table: a snapshot
	// (SnapshotFile) and the journal of the changes applied since
	// (JournalFile).
	CacheDir string
	// SaveInterval is the least time between a write of the snapshot,
	// which encodes and fsyncs the whole table, and its rewrite when the
	// journal has grown to 1/32 of it (at least 1 MiB). A change is
	// appended to the journal at once; the snapshot is written at once for
	// the first table of a run and for a full table. Default 5s; never
	// less than 20 times the last snapshot write took, so that rewriting a
	// large table takes at most 1/20 of the time.
	SaveInterval time.Duration
	// StartupTimeout bounds the wait for a route server's answer at start
	// before the table on disk is served. A route server that has
	// answered within it is not cut off while it sends the table (a large
	// one takes seconds), but by Client's timeout. Default 3s.
	StartupTimeout time.Duration
	// Wait is how long a route server may hold a poll. Default 30s.
	Wait time.Duration
	// RetryMax caps the backoff between failed attempts. Default 2s.
	RetryMax time.Duration
	Logger   *slog.Logger
	// Client is the HTTP client; default one with sensible timeouts.
	Client *http.Client
	// Report, when set, is called every ReportInterval; what it returns
	// (the proxy's per-generation counts) is posted to the route server
	// last heard from when it changed, and at least every
	// reportKeepalive while not empty. Default interval 1s.
	Report         func() []routes.GenerationCount
	ReportInterval time.Duration

	mu     sync.Mutex
	status Status

	saveOnce   sync.Once
	saveMu     sync.Mutex
	saveQ      []savedState // applied, not yet written
	saveQBytes int          // of the delta messages in saveQ
	saveNotify chan struct{}
	saveStop   chan struct{} // closed by flushDisk: write what is queued now
	saveDone   chan struct{}
	saves      atomic.Uint64 // snapshot writes
	journaled  atomic.Uint64 // delta messages appended to the journal

	compactAt int64 // test hook: the journal's size that calls for a snapshot; 0: the default
}

// Status is what the proxy's admin status shows of its route source.
type Status struct {
	Kind        string    `json:"kind"` // "route-servers"
	Connected   bool      `json:"connected"`
	Server      string    `json:"server,omitempty"` // the route server last heard from
	LastContact time.Time `json:"last_contact"`     // zero: never
	Stale       bool      `json:"stale"`            // the table may be out of date: from disk, or the route server lost the store
	FromDisk    bool      `json:"from_disk"`        // serving the snapshot loaded at start
	Version     uint64    `json:"version"`          // applied
	LastError   string    `json:"last_error,omitempty"`
	Failovers   uint64    `json:"failovers"`
}

// Status reports the source's state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Kind = "route-servers"
	return st
}

func (s *Source) update(f func(st *Status)) {
	s.mu.Lock()
	f(&s.status)
	s.mu.Unlock()
}

func (s *Source) setDefaults() {
	if s.StartupTimeout <= 0 {
		s.StartupTimeout = 3 * time.Second
	}
	if s.Wait <= 0 {
		s.Wait = 30 * time.Second
	}
	if s.RetryMax <= 0 {
		s.RetryMax = 2 * time.Second
	}
	if s.ReportInterval <= 0 {
		s.ReportInterval = time.Second
	}
	if s.SaveInterval <= 0 {
		s.SaveInterval = 5 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Client == nil {
		s.Client = &http.Client{
			Timeout:   s.Wait + 10*time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 2, ResponseHeaderTimeout: s.Wait + 5*time.Second},
		}
	}
}

// Run follows the route servers until ctx ends, delivering tables to sink.
// At start it waits up to StartupTimeout for a route server; if none
// answers it serves the snapshot in CacheDir (when valid) and keeps
// trying. It returns nil when ctx ends, or an error when it can never
// work (no URLs).
func (s *Source) Run(ctx context.Context, sink routes.Sink) error {
	if len(s.URLs) == 0 {
		return errors.New("routeclient: no route server URLs")
	}
	s.setDefaults()
	if s.CacheDir != "" {
		// Snapshot files a crash left half written or never put in
		// place (a full table's is staged while the table is checked).
		tmp, _ := filepath.Glob(filepath.Join(s.CacheDir, ".routes-*.tmp"))
		for _, f := range tmp {
			os.Remove(f)
		}
	}
	defer s.flushDisk()
	if s.Report != nil {
		reportCtx, stopReports := context.WithCancel(ctx)
		reportsDone := make(chan struct{})
		go func() {
			defer close(reportsDone)
			s.reportLoop(reportCtx)
		}()
		defer func() { stopReports(); <-reportsDone }()
	}
	var state *wire.State
	i := rand.IntN(len(s.URLs))
	started := time.Now()
	diskChecked := s.CacheDir == ""
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if !diskChecked && state == nil && time.Since(started) >= s.StartupTimeout {
			diskChecked = true
			state = s.loadDisk(sink)
		}
		base := s.URLs[i]
		pctx, cancel := context.WithCancel(ctx)
		answered := func() bool { return true }
		if !diskChecked && state == nil {
			// At start, a route server that accepts but does not answer
			// must not hold the proxy past StartupTimeout; one that has
			// answered may take longer to send its table.
			timer := time.AfterFunc(time.Until(started.Add(s.StartupTimeout)), cancel)
			answered = func() bool { return timer.Stop() }
		}
		next, err := s.poll(pctx, base, state, s.Wait, sink, answered)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.update(func(st *Status) { st.Connected, st.LastError = false, err.Error(); st.Failovers++ })
			s.Logger.Warn("route server failed; trying the next", "server", base, "error", err)
			if errors.Is(err, wire.ErrHashMismatch) || errors.Is(err, routes.ErrInvalid) || errors.Is(err, routes.ErrEmptyTable) {
				next = nil // ask for a full table next time
			}
			i = (i + 1) % len(s.URLs)
			sleep := backoff/2 + rand.N(backoff/2+1)
			if !diskChecked && state == nil {
				sleep = min(sleep, time.Until(started.Add(s.StartupTimeout)))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(max(sleep, 0)):
			}
			backoff = min(backoff*2, s.RetryMax)
			state = next
			continue
		}
		backoff = 50 * time.Millisecond
		state = next
	}
	return nil
}

// poll makes one route stream request and applies its answer. answered
// is called when the answer's headers are in; when it returns false (ctx
// is being cancelled: the startup wait is over) the answer is dropped.
func (s *Source) poll(ctx context.Context, base string, state *wire.State, wait time.Duration, sink routes.Sink, answered func() bool) (*wire.State, error) {
	q := url.Values{}
	if state != nil {
		q.Set(wire.ParamVersion, strconv.FormatUint(state.Version, 10))
		q.Set(wire.ParamHash, state.Hash)
		if st := s.Status(); st.FromDisk {
			// No route server has confirmed the table from disk yet: ask
			// for an answer at once instead of a held poll.
			wait = 0
		} else {
			// What we last heard; the server answers at once if its
			// staleness changed since.
			q.Set(wire.ParamStale, strconv.FormatBool(st.Stale))
		}
	}
	q.Set(wire.ParamWait, wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+wire.PathRoutes+"?"+q.Encode(), nil)
	if err != nil {
		return state, err
	}
	req.Header.Set(wire.HeaderProxy, s.ProxyID)
	req.Header.Set(wire.HeaderZone, s.Zone)
	resp, err := s.Client.Do(req)
	if err != nil {
		return state, err
	}
	defer resp.Body.Close()
	if !answered() {
		return state, fmt.Errorf("routeclient: %s: no answer within the startup timeout: %w", base, context.DeadlineExceeded)
	}
	stale := resp.Header.Get(wire.HeaderStale) == "true"
	switch resp.StatusCode {
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, resp.Body)
		// The route server confirms the table we have is its current one
		// (also when ours came from disk).
		s.update(func(st *Status) {
			st.Connected, st.Server, st.LastContact, st.Stale, st.FromDisk, st.LastError = true, base, time.Now(), stale, false, ""
		})
		return state, nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return state, fmt.Errorf("routeclient: %s answered %d: %s", base, resp.StatusCode, b)
	}
	body, err := readBody(resp.Body, resp.ContentLength)
	if err != nil {
		return state, fmt.Errorf("routeclient: %s: reading: %w", base, err)
	}
	if testHookBody != nil {
		testHookBody(body)
	}
	// The message keeps body's bytes (and the journal writes them).
	m, err := wire.DecodeMessage(body)
	if err != nil {
		return state, fmt.Errorf("routeclient: %s: decoding: %w", base, err)
	}
	var full *staging
	if m.Full && s.CacheDir != "" {
		// A full table's file is written beside the snapshot while the
		// table is checked, and put in place once it is served: then
		// nothing holds the message's bytes (tens of megabytes at scale)
		// while the table and the balancer's state for it are built.
		full = stage(filepath.Join(s.CacheDir, SnapshotFile), body)
	}
	meta := savedMeta{full: m.Full, base: m.Base, baseHash: m.BaseHash}
	version, stale := m.Version, m.Stale
	next, err := wire.Apply(state, m)
	if !m.Full {
		meta.msg = body // a delta's message, for the journal
	}
	m, body = nil, nil
	if err != nil {
		full.abort()
		sink.Reject(base, err)
		return state, err
	}
	t, err := next.Table()
	if err != nil {
		full.abort()
		s.Logger.Error("route server sent a table that does not validate; keeping the current one", "server", base, "version", version, "error", err)
		sink.Reject(base, err)
		return state, err
	}
	t.Source, t.LoadedAt = base, time.Now()
	sink.Apply(t)
	s.update(func(st *Status) {
		st.Connected, st.Server, st.LastContact, st.Stale, st.FromDisk, st.Version, st.LastError = true, base, time.Now(), stale, false, version, ""
	})
	if s.CacheDir != "" {
		meta.staged = full
		s.saveDisk(next, stale, meta)
	}
	return next, nil
}

// readBody reads a response body to its end, into a buffer of the
// length it declares (length, when not negative) if it is that long: a
// full table is tens of megabytes, which the proxy holds while it
// applies them, so the buffer must not be twice that. (bytes.Buffer's
// ReadFrom wants MinRead bytes free before it sees the end: with room
// for the body only, its last read copies the body into a buffer twice
// its size.)
func readBody(r io.Reader, length int64) ([]byte, error) {
	var body bytes.Buffer
	if length > 0 {
		body.Grow(int(min(length, 1<<30)) + bytes.MinRead)
	}
	if _, err := body.ReadFrom(r); err != nil {
		return nil, err
	}
	return body.Bytes(), nil
}

// savedMeta is what saveDisk needs of the message a table came from.
type savedMeta struct {
	full     bool
	base     uint64
	baseHash string
	msg      []byte   // a delta's message, which the writer appends to the journal
	staged   *staging // a full table's file, staged
}

// saveDisk hands an applied table to the disk writer goroutine, with the
// delta message it came from (appended to the journal) or its staged
// file. The poll loop never waits for the disk.
func (s *Source) saveDisk(st *wire.State, stale bool, m savedMeta) {
	s.saveOnce.Do(func() {
		s.saveNotify = make(chan struct{}, 1)
		s.saveStop = make(chan struct{})
		s.saveDone = make(chan struct{})
		go s.diskWriter()
	})
	it := savedState{st: st, stale: stale}
	if m.full {
		it.staged = m.staged
	} else {
		it.rec = &journalRecord{msg: m.msg, baseVersion: m.base, baseHash: m.baseHash, version: st.Version, hash: st.Hash}
	}
	var dropped []savedState
	s.saveMu.Lock()
	s.saveQ = append(s.saveQ, it)
	if it.rec != nil {
		s.saveQBytes += len(m.msg)
	}
	if s.saveQBytes > maxQueuedJournal {
		// The writer is far behind: the latest table, written whole,
		// stands for them all.
		dropped = append(dropped, s.saveQ[:len(s.saveQ)-1]...)
		it.rec = nil
		s.saveQ, s.saveQBytes = append(s.saveQ[:0], it), 0
	}
	s.saveMu.Unlock()
	abortStaged(dropped)
	select {
	case s.saveNotify <- struct{}{}:
	default:
	}
}

// abortStaged removes the staged files of tables that will not be
// written.
func abortStaged(items []savedState) {
	for _, it := range items {
		it.staged.abort()
	}
}

// maxQueuedJournal bounds the delta messages waiting for the disk writer.
const maxQueuedJournal = 16 << 20

type savedState struct {
	st    *wire.State
	stale bool
	rec   *journalRecord // nil: a full table (or the latest of a dropped backlog)
	// staged is a full table's file: the message as the route server
	// sent it, which is the snapshot's body as State.WriteFile would
	// encode it (same version, hash and content), written beside the
	// snapshot. Put in place, it costs no encoding.
	staged *staging
}

// flushDisk ends the writer goroutine once what is queued is written.
func (s *Source) flushDisk() {
	if s.saveNotify != nil {
		close(s.saveStop)
		<-s.saveDone
	}
}

// journalSyncEvery bounds how often the journal is fsynced: the changes
// of the last second may be lost in a crash of the machine (the route
// servers send them again).
const journalSyncEvery = time.Second

// Journal sizes: the snapshot is written again (and the journal started
// again) once the journal holds 1/compactShare of the snapshot's bytes,
// and at least minCompact.
const (
	compactShare = 32
	minCompact   = 1 << 20
)

// diskWriter writes what saveDisk hands it. A delta is appended to the
// journal at once (those waiting in one write; fsynced at most every
// journalSyncEvery). The snapshot, which encodes and fsyncs the whole
// table, is written at once for the first table of a run, for a full
// table, and when the journal cannot follow (it broke, or a backlog was
// dropped): the journal cannot hold those. It is written again when the
// journal has grown to a share of it, but at most every SaveInterval and
// every saveSpacing times as long as the last took, appending meanwhile:
// a table that takes long to write costs the same share of the time
// however often it changes.
func (s *Source) diskWriter() {
	defer close(s.saveDone)
	var (
		j        *journal // follows the snapshot on disk; nil: the next write is a snapshot
		last     time.Time
		took     time.Duration // the last snapshot write's
		snapSize int64
		stopping bool
	)
	defer func() { j.close() }()
	// The journal is fsynced at most every journalSyncEvery: appends that
	// come closer are written at once and fsynced together.
	var lastSync time.Time
	syncTimer := time.NewTimer(time.Hour)
	syncTimer.Stop()
	defer syncTimer.Stop()
	syncJournal := func() {
		if err := j.sync(); err != nil {
			s.Logger.Warn("cannot fsync the route table journal", "error", err)
		}
		lastSync = time.Now()
	}
	for {
		if !stopping {
			select {
			case <-s.saveNotify:
			case <-syncTimer.C:
				syncJournal()
				continue
			case <-s.saveStop:
				stopping = true
			}
		}
		s.saveMu.Lock()
		items := s.saveQ
		s.saveQ, s.saveQBytes = nil, 0
		s.saveMu.Unlock()
		if len(items) == 0 {
			if stopping {
				return
			}
			continue
		}
		full := j == nil
		if !full {
			recs := make([]journalRecord, 0, len(items))
			for _, it := range items {
				if it.rec == nil {
					full = true
					break
				}
				recs = append(recs, *it.rec)
			}
			if !full {
				if err := j.append(recs); err != nil {
					s.Logger.Warn("cannot append to the route table journal; writing the table whole", "error", err)
					full = true
				} else {
					if wait := journalSyncEvery - time.Since(lastSync); wait <= 0 {
						syncJournal()
					} else {
						syncTimer.Reset(wait)
					}
					s.journaled.Add(uint64(len(recs)))
					limit := max(minCompact, snapSize/compactShare)
					if s.compactAt > 0 {
						limit = s.compactAt
					}
					full = j.size > limit &&
						time.Since(last) >= max(s.SaveInterval, saveSpacing*took)
					items = items[len(items)-1:]
				}
			}
		}
		if !full {
			continue
		}
		// Written at once: until it is, the changes that come are
		// neither in the journal nor in a snapshot. (A compaction waited
		// for the spacing above, appending meanwhile.)
		v := items[len(items)-1]
		abortStaged(items[:len(items)-1])
		last = time.Now()
		j.close()
		j = nil
		path := filepath.Join(s.CacheDir, SnapshotFile)
		var size int64
		err := errors.New("not staged")
		if g := v.staged; g != nil {
			v.staged = nil
			var f *wire.Staged
			if f, err = g.wait(); err == nil {
				size, err = g.size, f.Commit()
			}
			if err != nil {
				s.Logger.Warn("cannot put the staged route table snapshot in place; writing it again", "path", path, "error", err)
			}
		}
		if err != nil {
			size, err = v.st.WriteFile(path, v.stale)
		}
		if err != nil {
			s.Logger.Error("cannot save the route table snapshot", "path", path, "error", err)
		} else if j, err = createJournal(s.CacheDir, v.st.Version, v.st.Hash); err != nil {
			s.Logger.Error("cannot start the route table journal; the table will be written whole again", "error", err)
			j = nil
		}
		snapSize = size
		took = time.Since(last)
		s.saves.Add(1)
		if err != nil && !stopping {
			// A disk that refuses the table is tried again after the
			// spacing, not at every change: the latest table goes back
			// in front of what came meanwhile, and the writer waits.
			s.saveMu.Lock()
			s.saveQ = append([]savedState{v}, s.saveQ...)
			s.saveMu.Unlock()
			t := time.NewTimer(max(s.SaveInterval, saveSpacing*took))
			select {
			case <-t.C:
			case <-s.saveStop:
				stopping = true
			}
			t.Stop()
		}
	}
}

// loadDisk serves the snapshot in CacheDir, if there is a valid one.
func (s *Source) loadDisk(sink routes.Sink) *wire.State {
	path := filepath.Join(s.CacheDir, SnapshotFile)
	start := time.Now()
	m, err := wire.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s.Logger.Warn("no route server answered and there is no snapshot on disk yet", "path", path)
		return nil
	}
	var snapVersion uint64
	if err == nil {
		var st *wire.State
		snapVersion = m.Version
		st, err = wire.Apply(nil, m)
		m = nil // its bytes are garbage once applied
		if err == nil {
			// Then the changes applied since the snapshot was written.
			var n int
			var jerr error
			st, n, jerr = replayJournal(s.CacheDir, st)
			if jerr != nil {
				s.Logger.Warn("the route table journal stops early; serving the table as of its last good change", "path",
					filepath.Join(s.CacheDir, JournalFile), "applied", n, "version", st.Version, "error", jerr)
			}
			var t *routes.Table
			if t, err = st.Table(); err == nil {
				t.Source, t.LoadedAt = "cache:"+path, time.Now()
				sink.Apply(t)
				s.update(func(x *Status) { x.FromDisk, x.Stale, x.Version = true, true, st.Version })
				s.Logger.Warn("no route server answered; serving the snapshot from disk", "path", path, "version", st.Version,
					"snapshot_version", snapVersion, "journal_changes", n,
					"deployments", t.Len(), "took", time.Since(start).Round(time.Millisecond).String())
				return st
			}
		}
	}
	s.Logger.Error("refusing the route table snapshot on disk", "path", path, "error", err)
	sink.Reject("cache:"+path, err)
	return nil
}

// reportKeepalive is how often an unchanged, non-empty report is sent
// again, so that the route servers keep it (they forget a proxy's report
// after their proxy TTL).
const reportKeepalive = 15 * time.Second

// reportLoop posts s.Report() to a route server until ctx ends: the one
// last heard from, else the next in turn after a failure. Nothing is sent
// before a route server has answered a poll.
func (s *Source) reportLoop(ctx context.Context) {
	tick := time.NewTicker(s.ReportInterval)
	defer tick.Stop()
	var last []byte
	var lastSent time.Time
	next := rand.IntN(len(s.URLs))
	failed := false // the last post failed: go round the URLs
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		gens := s.Report()
		if gens == nil {
			gens = []routes.GenerationCount{}
		}
		body, err := json.Marshal(wire.Report{Proxy: s.ProxyID, Zone: s.Zone, Generations: gens})
		if err != nil {
			continue
		}
		if bytes.Equal(body, last) && (len(gens) == 0 || time.Since(lastSent) < reportKeepalive) {
			continue
		}
		base := s.Status().Server
		if base == "" && !failed {
			// No route server heard from yet: the report goes to the one
			// the proxy follows, once there is one.
			continue
		}
		if failed {
			base = s.URLs[next]
		}
		if err := s.postReport(ctx, base, body); err != nil {
			s.Logger.Debug("cannot send the generation report", "server", base, "error", err)
			next, failed = (next+1)%len(s.URLs), true
			continue
		}
		last, lastSent, failed = body, time.Now(), false
	}
}

func (s *Source) postReport(ctx context.Context, base string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+wire.PathReport, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s answered %d: %s", base, resp.StatusCode, b)
	}
	return nil
}
