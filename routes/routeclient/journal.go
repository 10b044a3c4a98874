package routeclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/routes/wire"
)

// JournalFile is the name, in the cache directory, of the journal of the
// changes applied since SnapshotFile was written: a change costs the disk
// what it changed, and the snapshot is written again only when the journal
// has grown to a share of it.
//
// The journal starts with a line naming the snapshot it follows,
//
//	switchyard-journal 1 <version> <hash>
//
// then holds records: a 4-byte big-endian length n, the CRC-32C of the
// payload (4 bytes, big-endian), and the payload, n bytes: a delta message
// as a route server sent it. Each applies to the state that the snapshot
// and the records before it give. A journal whose first line names another
// snapshot (left by a crash between writing a snapshot and starting its
// journal) is ignored; reading stops at the first record that is torn,
// fails its CRC or does not apply, keeping the state before it.
const JournalFile = "routes.journal"

const journalMagic = "switchyard-journal 1 "

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxJournalRecord bounds a record's length when reading (a corrupt length
// must not allocate gigabytes).
const maxJournalRecord = 256 << 20

// journal is an open journal file, appended to by the disk writer.
type journal struct {
	f    *os.File
	size int64 // bytes in the file
	// version and hash are the state the next record must apply to.
	version  uint64
	hash     string
	unsynced bool // appended since the last fsync
}

// createJournal replaces the journal in dir with an empty one that follows
// the snapshot of (version, hash): written to a temporary file, fsynced
// and renamed over the old one, so that a crash leaves one or the other.
func createJournal(dir string, version uint64, hash string) (*journal, error) {
	path := filepath.Join(dir, JournalFile)
	tmp, err := os.CreateTemp(dir, JournalFile+".tmp*")
	if err != nil {
		return nil, err
	}
	header := journalMagic + strconv.FormatUint(version, 10) + " " + hash + "\n"
	_, err = tmp.WriteString(header)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("routeclient: journal %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return &journal{f: tmp, size: int64(len(header)), version: version, hash: hash}, nil
}

// journalRecord is a delta message to append, with the state it applies
// to and the state it gives.
type journalRecord struct {
	msg         []byte
	baseVersion uint64
	baseHash    string
	version     uint64
	hash        string
}

// append writes recs in one write (the caller fsyncs: sync). A record
// that does not follow the journal's last state is an error, and nothing
// is written.
func (j *journal) append(recs []journalRecord) error {
	var buf []byte
	v, h := j.version, j.hash
	for _, r := range recs {
		if r.baseVersion != v || r.baseHash != h {
			return fmt.Errorf("routeclient: journal: a change from version %d does not follow version %d", r.baseVersion, v)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.msg)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(r.msg, castagnoli))
		buf = append(buf, r.msg...)
		v, h = r.version, r.hash
	}
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("routeclient: journal: %w", err)
	}
	j.size += int64(len(buf))
	j.version, j.hash = v, h
	j.unsynced = true
	return nil
}

// sync fsyncs what was appended, if anything.
func (j *journal) sync() error {
	if j == nil || !j.unsynced {
		return nil
	}
	j.unsynced = false
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("routeclient: journal: %w", err)
	}
	return nil
}

func (j *journal) close() {
	if j != nil {
		_ = j.sync()
		j.f.Close()
	}
}

// replayJournal applies to st, the state of the snapshot in dir, the
// journal's records in order. It returns the last state reached and the
// records applied; err says why it stopped before the journal's end (a
// torn or corrupt record, one that does not apply), or is nil. A missing
// journal, or one that follows another snapshot, applies nothing and is
// not an error.
func replayJournal(dir string, st *wire.State) (*wire.State, int, error) {
	f, err := os.Open(filepath.Join(dir, JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	line, err := r.ReadString('\n')
	if err != nil {
		return st, 0, fmt.Errorf("journal header: %w", err)
	}
	want := journalMagic + strconv.FormatUint(st.Version, 10) + " " + st.Hash + "\n"
	if line != want {
		if strings.HasPrefix(line, journalMagic) {
			return st, 0, nil // it follows an older snapshot: nothing of it applies
		}
		return st, 0, errors.New("journal header: not a journal")
	}
	var head [8]byte
	var buf []byte
	for n := 0; ; n++ {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return st, n, nil
			}
			return st, n, fmt.Errorf("record %d: torn", n+1)
		}
		size := binary.BigEndian.Uint32(head[:4])
		if size > maxJournalRecord {
			return st, n, fmt.Errorf("record %d: length %d", n+1, size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return st, n, fmt.Errorf("record %d: torn", n+1)
		}
		if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(head[4:]) {
			return st, n, fmt.Errorf("record %d: checksum", n+1)
		}
		// DecodeMessage keeps its input: each record gets its own.
		m, err := wire.DecodeMessage(append([]byte(nil), buf...))
		if err != nil {
			return st, n, fmt.Errorf("record %d: %w", n+1, err)
		}
		if m.Full {
			return st, n, fmt.Errorf("record %d: a full table", n+1)
		}
		next, err := wire.Apply(st, m)
		if err != nil {
			return st, n, fmt.Errorf("record %d: %w", n+1, err)
		}
		st = next
	}
}
