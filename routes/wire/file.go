package wire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// ErrCorrupt is returned for a snapshot file that fails its checksum or
// does not parse.
var ErrCorrupt = errors.New("wire: corrupt snapshot")

// fileMagic starts the first line of a snapshot file:
// "switchyard-routes 2 crc32c:<8 hex digits, of the rest>\n", then a
// full Message. The checksum is against a torn or damaged file: the
// message's own table hash covers its deployments (Apply checks it).
// Files of format 1 (fileMagicV1, the SHA-256 of the rest), written by
// earlier versions, are read too.
const (
	fileMagic   = "switchyard-routes 2 crc32c:"
	fileMagicV1 = "switchyard-routes 1 sha256:"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileChecksum returns the checksum of a snapshot's body, as its header
// writes it.
func fileChecksum(body []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli))
}

// WriteFile stores a full message at path atomically: a temporary file in
// the same directory is written and fsynced, then renamed over path, and
// the directory is fsynced. A reader sees the old file or the new one,
// never a mix.
func WriteFile(path string, full []byte) error {
	return writeFile(path, func(w io.Writer) error {
		_, err := w.Write(full)
		return err
	})
}

// WriteFile stores s as a full message at path, as WriteFile(path,
// s.Full(stale)) does, byte for byte, without holding the message: each
// deployment is encoded and written in turn, and the checksum in the
// first line is written last. It returns the message's size (what
// len(s.Full(stale)) is).
func (s *State) WriteFile(path string, stale bool) (int64, error) {
	var n int64
	err := writeFile(path, func(w io.Writer) error {
		c := &countingWriter{w: w}
		err := writeFull(c, s.Version, s.Hash, stale, s.Domain, s.Zones, s.encodings())
		n = c.n
		return err
	})
	return n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// writeFile writes a snapshot file whose body body writes, atomically
// (see WriteFile): the first line, whose checksum is known once the body
// is written, is written over a placeholder of its length.
func writeFile(path string, body func(w io.Writer) error) error {
	f, err := stage(path, body)
	if err != nil {
		return err
	}
	return f.Commit()
}

// Staged is a snapshot file written and fsynced beside its path, but not
// in its place yet: Commit puts it there, Abort removes it. It lets a
// caller write a table's file while it checks the table, and drop the
// message's bytes once both are done.
type Staged struct{ tmp, path string }

// StageFile writes a full message as WriteFile does, to a temporary file
// beside path, and leaves it there.
func StageFile(path string, full []byte) (*Staged, error) {
	return stage(path, func(w io.Writer) error {
		_, err := w.Write(full)
		return err
	})
}

func stage(path string, body func(w io.Writer) error) (*Staged, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".routes-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("wire: snapshot: %w", err)
	}
	h := crc32.New(castagnoli)
	head := len(fileMagic) + 8 + 1
	_, err = tmp.Seek(int64(head), io.SeekStart)
	if err == nil {
		bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 256<<10)
		if err = body(bw); err == nil {
			err = bw.Flush()
		}
	}
	if err == nil {
		_, err = tmp.WriteAt(fmt.Appendf(nil, "%s%08x\n", fileMagic, h.Sum32()), 0)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("wire: snapshot %s: %w", path, err)
	}
	return &Staged{tmp: tmp.Name(), path: path}, nil
}

// Commit renames the staged file over its path and fsyncs the
// directory. A reader sees the old file or the new one, never a mix. A
// file that cannot be put in place is removed.
func (f *Staged) Commit() error {
	if err := os.Rename(f.tmp, f.path); err != nil {
		os.Remove(f.tmp)
		return fmt.Errorf("wire: snapshot %s: %w", f.path, err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the staged file.
func (f *Staged) Abort() { os.Remove(f.tmp) }

// ReadFile loads a snapshot written by WriteFile and checks it. A file
// that fails the check is ErrCorrupt, with what failed.
func ReadFile(path string) (*Message, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: %s: no snapshot header", ErrCorrupt, path)
	}
	body := b[nl+1:]
	var want, got string
	switch {
	case bytes.HasPrefix(b, []byte(fileMagic)):
		want, got = string(b[len(fileMagic):nl]), fileChecksum(body)
	case bytes.HasPrefix(b, []byte(fileMagicV1)):
		sum := sha256.Sum256(body)
		want, got = string(b[len(fileMagicV1):nl]), hex.EncodeToString(sum[:])
	default:
		return nil, fmt.Errorf("%w: %s: no snapshot header", ErrCorrupt, path)
	}
	if got != want {
		return nil, fmt.Errorf("%w: %s: checksum %s does not match the header's %s", ErrCorrupt, path, shortHash(got), shortHash(want))
	}
	m, err := DecodeMessage(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if !m.Full {
		return nil, fmt.Errorf("%w: %s: not a full table", ErrCorrupt, path)
	}
	return m, nil
}
