package routesfile

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// Source watches a routes file (see Parse for its format) and hands its
// tables to a routes.Sink.
//
// It polls: every Interval it compares the file's size, modification time
// and identity (device and inode) with the last look, and on a difference
// reads the file and hashes it; content equal to the table in use, or to
// the content refused last, changes nothing. So a file replaced by rename
// (editors, config management) is seen even when size and mtime match, and
// a rewrite of the same bytes is not a new table. A file modified within
// the last racyWindow is re-read on every poll, because a second write in
// the same mtime tick could leave size and mtime unchanged.
//
// A Source must not be copied after first use. Load and Run may be
// called from different goroutines.
type Source struct {
	// Path of the routes file. Errors name it as given; Source uses its
	// absolute form.
	Path string
	// Interval is how often the file is checked for changes; zero means 1s.
	Interval time.Duration
	// Reload, if not nil, forces a reload on each receive (the CLI wires
	// SIGHUP here): the file is read and parsed even if it looks unchanged,
	// and a refused file is reported again.
	Reload <-chan os.Signal
	// Logger gets one line per accepted or refused load; nil means
	// slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	version   uint64      // of the table in use; 0 until one is accepted
	good      [32]byte    // hash of the table in use, if version > 0
	bad       [32]byte    // hash of the last content refused, if hasBad
	hasBad    bool        // the last outcome was a refused content
	failure   string      // the last stat or read error reported, if any
	seen      fs.FileInfo // the file at the last look; nil if none
	trustSeen bool        // seen is old enough to skip reading an unchanged file
}

// racyWindow is how recently modified a file must be for its size and mtime
// not to be trusted: filesystems with coarse timestamps (1s ext3 and HFS+,
// 2s FAT) can hide a second write of the same size.
const racyWindow = 2 * time.Second

// outcome is what one look at the file found.
type outcome int

const (
	unchanged outcome = iota // nothing to tell the sink
	accepted                 // a new table
	refused                  // invalid content, or the file could not be read
	restored                 // after a refusal, the file is back to the table in use
	same                     // a forced reload found the table in use
)

// Load reads, parses and validates the file now and returns its table, with
// Version, Source and LoadedAt set. Version starts at 1 and grows with each
// accepted content; loading the content of the table in use again returns a
// new table with the same Version. Load does not call a sink; a Run started
// afterwards reports only what changes after it.
func (s *Source) Load() (*routes.Table, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _, err := s.look(true)
	return t, err
}

// Run watches the file until ctx is done, then returns nil. Each accepted
// change goes to sink.Apply; each refusal is logged (level Error, with the
// path and the error) and goes to sink.Reject, and the sink keeps serving
// its last good table. A file that is missing or unreadable is a refusal,
// reported once until it changes. If no table has been accepted yet (Load
// was not called, or refused the file), Run loads the file as it starts.
func (s *Source) Run(ctx context.Context, sink routes.Sink) error {
	if s.Path == "" {
		return errors.New("routesfile: Source without Path")
	}
	if sink == nil {
		return errors.New("routesfile: Source.Run without a Sink")
	}
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	s.mu.Lock()
	first := s.version == 0
	s.mu.Unlock()
	s.check(sink, first)

	tick := time.NewTicker(interval)
	defer tick.Stop()
	reload := s.Reload
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.check(sink, false)
		case _, ok := <-reload:
			if !ok {
				reload = nil // closed: no more forced reloads
				continue
			}
			s.check(sink, true)
		}
	}
}

// check looks at the file and tells the sink and the log what it found.
func (s *Source) check(sink routes.Sink, force bool) {
	s.mu.Lock()
	t, what, err := s.look(force)
	version := s.version
	s.mu.Unlock()

	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	switch what {
	case accepted:
		log.Info("routes file loaded", "path", s.Path, "version", t.Version, "deployments", t.Len())
		sink.Apply(t)
	case refused:
		log.Error("routes file rejected", "path", s.Path, "error", err)
		sink.Reject(s.source(), err)
	case restored:
		log.Info("routes file is back to the table in use", "path", s.Path, "version", version)
	case same:
		log.Info("routes file unchanged", "path", s.Path, "version", version)
	}
}

// look examines the file; force reads and parses it even if it looks
// unchanged. It returns the new table when what is accepted, and the error
// when what is refused (for Load, also the table in use when what is same).
// The caller holds s.mu.
func (s *Source) look(force bool) (t *routes.Table, what outcome, err error) {
	fi, err := os.Stat(s.Path)
	if err != nil {
		return nil, s.fail(err, force), err
	}
	if !force && s.seen != nil && s.trustSeen && sameFile(s.seen, fi) && s.failure == "" {
		return nil, unchanged, nil
	}
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, s.fail(err, force), err
	}
	s.seen, s.trustSeen = fi, time.Since(fi.ModTime()) > racyWindow
	wasFailing := s.failure != ""
	s.failure = ""

	sum := sha256.Sum256(data)
	inUse := s.version > 0 && sum == s.good
	if !force {
		switch {
		case inUse && (s.hasBad || wasFailing):
			s.hasBad = false
			return nil, restored, nil
		case inUse, s.hasBad && sum == s.bad:
			return nil, unchanged, nil
		}
	}

	t, err = Parse(s.Path, data)
	if err != nil {
		s.bad, s.hasBad = sum, true
		return nil, refused, err
	}
	s.hasBad = false
	what = same
	if !inUse {
		s.version++
		s.good = sum
		what = accepted
	}
	t.Version = s.version
	t.Source = s.source()
	t.LoadedAt = time.Now()
	return t, what, nil
}

// fail records a stat or read error. It is reported (refused) when forced
// or when it differs from the last one reported.
func (s *Source) fail(err error, force bool) outcome {
	s.seen = nil
	s.hasBad = false
	msg := err.Error()
	if !force && msg == s.failure {
		return unchanged
	}
	s.failure = msg
	return refused
}

// source names the file for routes.Table.Source and routes.Sink.Reject:
// "file:/abs/path".
func (s *Source) source() string {
	p, err := filepath.Abs(s.Path)
	if err != nil {
		p = s.Path
	}
	return "file:" + p
}

// sameFile reports whether a and b look like the same unchanged file.
func sameFile(a, b fs.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode() && os.SameFile(a, b)
}
