package routeclient

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
)

// fullServer answers every request with the full message next gives.
func fullServer(t *testing.T, next func() []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(next())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func fullMessage(version uint64, addr string) []byte {
	in := input(version, addr)
	return wire.NewHashedSnapshot(wire.HashSum, nil, version, in.Domain, nil, in.Deployments).Full(false)
}

// A full table's message is not held once it is decoded and applied:
// while the table is served, the bytes read are garbage (its file on
// disk is written beside the snapshot meanwhile, and put in place after).
func TestFullTableBytesNotHeldWhileServed(t *testing.T) {
	var body weak.Pointer[byte]
	testHookBody = func(b []byte) { body = weak.Make(&b[0]) }
	t.Cleanup(func() { testHookBody = nil })
	msg := fullMessage(10, "127.0.0.1:10")
	url := fullServer(t, func() []byte { return msg })
	dir := t.TempDir()
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Hour, Logger: quiet, RetryMax: 100 * time.Millisecond}
	held := make(chan bool, 1)
	k := &hookSink{apply: func(*routes.Table) {
		deadline := time.Now().Add(seen)
		for body.Value() != nil && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
		select {
		case held <- body.Value() != nil:
		default:
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx, k); close(done) }()
	defer func() { cancel(); <-done }()
	if <-held {
		t.Error("the message's bytes are still held while its table is served")
	}
	testutil.Eventually(t, seen, "the table on disk", func() bool { return fromDiskVersion(dir) == 10 })
}

// hookSink calls apply with each table.
type hookSink struct{ apply func(*routes.Table) }

func (k *hookSink) Apply(t *routes.Table)    { k.apply(t) }
func (k *hookSink) Reject(_ string, _ error) {}

// A full table that Apply refuses leaves the disk as it was: its staged
// file is removed, the snapshot is the last good table's.
func TestRefusedFullTableLeavesTheDisk(t *testing.T) {
	good, bad := fullMessage(10, "127.0.0.1:10"), fullMessage(11, "127.0.0.1:11")
	bad = bytes.Replace(bad, []byte("127.0.0.1:11"), []byte("127.0.0.1:12"), 1) // the hash no longer matches
	var served atomic.Int32
	url := fullServer(t, func() []byte {
		if served.Add(1) == 1 {
			return good
		}
		return bad
	})
	dir := t.TempDir()
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Hour, Logger: quiet, RetryMax: 100 * time.Millisecond}
	k := runSource(t, src)
	k.waitVersion(t, 10)
	testutil.Eventually(t, seen, "the first table on disk", func() bool { return fromDiskVersion(dir) == 10 })
	testutil.Eventually(t, seen, "the bad table refused", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.rejects) >= 2
	})
	testutil.Eventually(t, seen, "no staged file left", func() bool {
		tmp, _ := filepath.Glob(filepath.Join(dir, ".routes-*.tmp"))
		return len(tmp) == 0
	})
	if v := fromDiskVersion(dir); v != 10 {
		t.Errorf("disk at version %d after a refused table; want 10", v)
	}
}

// A snapshot file a crash left staged or half written is removed when
// the source starts.
func TestStaleStagedFilesRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".routes-1234.tmp")
	if err := os.WriteFile(stale, []byte("half a table"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := fullServer(t, func() []byte { return fullMessage(10, "127.0.0.1:10") })
	src := &Source{URLs: []string{url}, ProxyID: "p1", CacheDir: dir, SaveInterval: time.Hour, Logger: quiet}
	k := runSource(t, src)
	k.waitVersion(t, 10)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale staged file is still there: %v", err)
	}
}
