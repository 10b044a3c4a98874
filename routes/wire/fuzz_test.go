package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// FuzzDecodeDeployment feeds arbitrary bytes to DecodeDeployment. It must
// not panic; an error comes without a deployment; what decodes encodes to
// canonical JSON that decodes to the same deployment and encodes to the
// same bytes again; and a deployment that validates reaches a proxy's
// table unchanged through a snapshot, a full message and Apply.
func FuzzDecodeDeployment(f *testing.F) {
	a := dep("aaaaaaaa", map[string]int{"blue": 90, "green": 10}, "127.0.0.1:1", "[::1]:2")
	a.Aliases, a.Allow = []string{"prod", "search"}, []string{"10.0.0.0/8", "::1"}
	f.Add(EncodeDeployment(a))
	f.Add([]byte(`{"id":"bbbbbbbb","kind":"kb","serving":null,"instances":null}`))
	f.Add([]byte(`{"ID":"cccccccc","id":"dddddddd","Kind":"es","serving":{"a":1,"a":2},"instances":[{"id":"x"},{"id":"x"},null]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDeployment(data)
		// One decoder for every input, as decodeAll keeps one for many
		// deployments: what it interned and cached before must not
		// change what it decodes now.
		if fd, ok := fuzzDecoder.decode(data); ok {
			// What the fast decoder takes, json.Unmarshal takes to the
			// same spec, and it is encoded again byte for byte (so
			// decodeAll keeps no copy of it).
			if err != nil || !reflect.DeepEqual(fd, d) {
				t.Fatalf("the fast decoder takes %s as %+v; json.Unmarshal as %+v, %v", data, fd, d, err)
			}
			if again := appendEncoding(nil, fd); !bytes.Equal(again, data) {
				t.Fatalf("the fast decoder takes %s, which is encoded again as %s", data, again)
			}
		}
		if err != nil {
			if d != nil {
				t.Errorf("DecodeDeployment returned a deployment with its error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "wire: deployment: ") {
				t.Errorf("error %q does not say what failed to decode", err)
			}
			return
		}
		enc := EncodeDeployment(d)
		d2, err := DecodeDeployment(enc)
		if err != nil {
			t.Fatalf("the canonical encoding %s does not decode: %v", enc, err)
		}
		if !sameDeployment(d, d2) {
			t.Fatalf("decode(encode(x)) != x:\n x  %+v\n got %+v\nencoding %s", d, d2, enc)
		}
		if enc2 := EncodeDeployment(d2); !bytes.Equal(enc, enc2) {
			t.Fatalf("the encoding is not canonical:\n%s\nthen\n%s", enc, enc2)
		}
		if (routes.ValidateDeployment(d) == nil) != (routes.ValidateDeployment(d2) == nil) {
			t.Fatalf("validation changed over the round trip: %v, then %v", routes.ValidateDeployment(d), routes.ValidateDeployment(d2))
		}
		if routes.ValidateDeployment(d) != nil {
			return
		}
		s := NewSnapshot(nil, 1, "example.test", nil, map[string]*routes.DeploymentSpec{d.ID: d})
		st, err := Apply(nil, decodeMessage(t, s.Full(false)))
		if err != nil {
			t.Fatalf("Apply of a snapshot of a valid deployment: %v", err)
		}
		tb, err := st.Table()
		if err != nil {
			t.Fatalf("table of a snapshot of a valid deployment: %v", err)
		}
		got := tb.Lookup([]byte(d.ID))
		if got == nil || !bytes.Equal(EncodeDeployment(&got.DeploymentSpec), enc) {
			t.Fatalf("the table holds %+v; want %s", got, enc)
		}
	})
}

// fuzzDecoder is FuzzDecodeDeployment's fast decoder, kept across inputs.
var fuzzDecoder = newFastDecoder()

// FuzzApplyMessage feeds arbitrary bytes to the route stream's receiver:
// decoded as the route client decodes an answer, then applied to nothing
// and to a valid state, once as sent and once with the hash the content
// really has (a sender that is honest about garbage). Apply must not
// panic; an error leaves no state and the old state untouched; an
// accepted state holds exactly the deployments a plain reference says,
// builds a table or an error, and survives State.Full, the encoding of
// the snapshot on disk, unchanged.
func FuzzApplyMessage(f *testing.F) {
	base := baseSnapshot()
	next := nextSnapshot()
	f.Add(base.Full(false))
	f.Add(next.Full(true))
	f.Add(next.Delta(base, false))
	f.Add([]byte(`{"version":1,"hash":"","full":true,"domain":"example.test","zones":null,"deployments":[{"id":"aaaaaaaa"},{"id":"aaaaaaaa","kind":"kb"}]}`))
	f.Add([]byte(`{"version":3,"full":false,"base":2,"deleted":["aaaaaaaa","nope"],"deployments":[]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&m); err != nil {
			return
		}
		baseState, err := Apply(nil, decodeMessage(t, base.Full(false)))
		if err != nil {
			t.Fatal(err)
		}
		before := baseState.Full(false)
		for _, s := range []*State{nil, baseState} {
			checkApply(t, s, &m)
			honest := m
			if !m.Full && s != nil {
				honest.Base, honest.BaseHash = s.Version, s.Hash
			}
			if raw, ok := refApply(s, &honest); ok {
				honest.Hash = refHash(honest.Domain, honest.Zones, raw)
			}
			checkApply(t, s, &honest)
		}
		if after := baseState.Full(false); !bytes.Equal(before, after) {
			t.Fatalf("Apply changed the state it was given:\n%s\nthen\n%s", before, after)
		}
	})
}

// checkApply applies m to s and checks the result against refApply.
func checkApply(t *testing.T, s *State, m *Message) {
	t.Helper()
	st, err := Apply(s, m)
	want, ok := refApply(s, m)
	if ok && refHash(m.Domain, m.Zones, want) != m.Hash {
		ok = false
	}
	if err != nil {
		if st != nil {
			t.Fatalf("Apply returned a state with its error %v", err)
		}
		if ok {
			t.Fatalf("Apply refused a message the reference accepts: %v", err)
		}
		return
	}
	if !ok {
		t.Fatalf("Apply accepted a message the reference refuses (full %v, %d deployments)", m.Full, len(m.Deployments))
	}
	if st.Version != m.Version || st.Hash != m.Hash || st.Domain != m.Domain {
		t.Errorf("state version %d hash %s domain %q; message says %d %s %q", st.Version, st.Hash, st.Domain, m.Version, m.Hash, m.Domain)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(rawOf(st))), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("state holds %v; want %v", slices.Sorted(maps.Keys(rawOf(st))), slices.Sorted(maps.Keys(want)))
	}
	for id, raw := range rawOf(st) {
		d, err := DecodeDeployment(raw)
		if err != nil || d.ID != id || !sameDeployment(d, depsOf(st)[id]) {
			t.Fatalf("state's deployment %q: raw %s and decoded %+v disagree (%v)", id, raw, depsOf(st)[id], err)
		}
	}

	// The snapshot on disk is st.Full: it must give back the same state.
	back, err := Apply(nil, decodeMessage(t, st.Full(false)))
	if err != nil {
		t.Fatalf("State.Full of an accepted state is refused: %v", err)
	}
	if back.Version != st.Version || back.Hash != st.Hash || back.Domain != st.Domain ||
		!maps.Equal(back.Zones, st.Zones) || !maps.EqualFunc(rawOf(back), rawOf(st), bytes.Equal) {
		t.Fatalf("State.Full and Apply changed the state")
	}

	tb, err := st.Table()
	if err != nil {
		return
	}
	if tb.Version != st.Version || tb.Len() != len(depsOf(st)) {
		t.Errorf("table version %d with %d deployments; state %d with %d", tb.Version, tb.Len(), st.Version, len(depsOf(st)))
	}
	for id, d := range depsOf(st) {
		if got := tb.Lookup([]byte(id)); got == nil || !bytes.Equal(EncodeDeployment(&got.DeploymentSpec), EncodeDeployment(d)) {
			t.Errorf("table's deployment %s differs from the state's", id)
		}
	}
}

// refApply is what applying m to s should hold, written plainly: the
// deployments by ID (a later one of the same ID wins), starting from
// nothing for a full message and from s, less the deleted IDs, for a delta
// on s. ok is false when m does not apply: a delta on another base, or a
// deployment that does not decode.
func refApply(s *State, m *Message) (raw map[string][]byte, ok bool) {
	raw = map[string][]byte{}
	if !m.Full {
		if s == nil || s.Version != m.Base || s.Hash != m.BaseHash {
			return nil, false
		}
		for id, r := range rawOf(s) {
			raw[id] = r
		}
		for _, id := range m.Deleted {
			delete(raw, id)
		}
	}
	for _, r := range m.Deployments {
		var d routes.DeploymentSpec
		if json.Unmarshal(r, &d) != nil {
			return nil, false
		}
		c, err := json.Marshal(r) // as State.Full will write it
		if err != nil {
			return nil, false
		}
		raw[d.ID] = c
	}
	return raw, true
}

// refHash is the table hash as the package doc defines it, written out.
func refHash(domain string, zones map[string]string, raw map[string][]byte) string {
	var b bytes.Buffer
	b.WriteString("domain " + domain + "\n")
	for _, z := range slices.Sorted(maps.Keys(zones)) {
		b.WriteString("zone " + z + " " + zones[z] + "\n")
	}
	for _, id := range slices.Sorted(maps.Keys(raw)) {
		b.Write(raw[id])
		b.WriteByte('\n')
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// FuzzReadSnapshot reads arbitrary bytes as a snapshot file. ReadFile must
// not panic, and accepts only a file whose header holds the checksum of
// the rest (CRC-32C, or in format 1 the SHA-256) and whose rest is a full
// message; everything else is ErrCorrupt.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(snapshotFile(baseSnapshot().Full(false)))
	f.Add(snapshotFileV1(baseSnapshot().Full(false)))
	f.Add([]byte(fileMagicV1 + "\n"))
	f.Add(snapshotFile(nextSnapshot().Full(true)))
	f.Add(snapshotFile(nextSnapshot().Delta(baseSnapshot(), false)))
	f.Add(snapshotFile([]byte("{}")))
	f.Add([]byte(fileMagic + "\n"))
	f.Add([]byte(""))

	files := scratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := files.write(t, data)
		defer os.Remove(path)
		m, err := ReadFile(path)
		if err != nil {
			if m != nil {
				t.Errorf("ReadFile returned a message with its error %v", err)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadFile of a file that exists: %v; want ErrCorrupt", err)
			}
			return
		}
		header, body, _ := bytes.Cut(data, []byte("\n"))
		if !bytes.Equal(data, snapshotFile(body)) && !bytes.Equal(data, snapshotFileV1(body)) {
			t.Fatalf("accepted a file whose header %q is not the checksum of its body", header)
		}
		var want Message
		if err := json.Unmarshal(body, &want); err != nil || !want.Full {
			t.Fatalf("accepted a body that is not a full message (%v)", err)
		}
		if !reflect.DeepEqual(asUnmarshaled(m), want) {
			t.Fatalf("ReadFile gave %+v; the body says %+v", *m, want)
		}
	})
}

// FuzzSnapshotDamage writes a snapshot file of a body as WriteFile does
// (TestWriteFileFormat holds the two together; WriteFile itself fsyncs,
// too slow to call per input), reads it back, then damages it: cut at a
// byte, or one byte flipped (xor mask, 0 taken as 1). The intact file is
// accepted exactly when the body is a full message, with the body's
// content; the damaged one is always ErrCorrupt, never accepted with other
// content.
func FuzzSnapshotDamage(f *testing.F) {
	f.Add(baseSnapshot().Full(false), uint(0), byte(1), false)
	f.Add(baseSnapshot().Full(false), uint(80), byte(0x20), false)
	f.Add(nextSnapshot().Full(true), uint(200), byte(0), true)
	f.Add(nextSnapshot().Full(true), uint(1<<20), byte(0x80), true)
	f.Add([]byte(`{"full":true}`), uint(27), byte(0x40), false)

	files := scratch(f)
	f.Fuzz(func(t *testing.T, body []byte, at uint, mask byte, cut bool) {
		b := snapshotFile(body)
		path := files.write(t, b)
		defer os.Remove(path)
		var want Message
		valid := json.Unmarshal(body, &want) == nil && want.Full
		m, err := ReadFile(path)
		if valid != (err == nil) {
			t.Fatalf("ReadFile of an intact file: %v; body is a full message: %v", err, valid)
		}
		if valid && !reflect.DeepEqual(asUnmarshaled(m), want) {
			t.Fatalf("ReadFile gave %+v; the body says %+v", *m, want)
		}

		i := int(at % uint(len(b)))
		if cut {
			b = b[:i]
		} else {
			if mask == 0 {
				mask = 1
			}
			b[i] ^= mask
		}
		damaged := files.write(t, b)
		defer os.Remove(damaged)
		if m, err := ReadFile(damaged); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("damaged file (cut %v at %d, mask %#x): ReadFile = %+v, %v; want ErrCorrupt", cut, i, mask, m, err)
		}
	})
}

// scratchDir hands out new files in one directory of a fuzz worker.
// Each input gets a file of its own: truncating and rewriting one file
// makes ext4 flush it on close, which slows fuzzing to a crawl.
type scratchDir struct {
	dir string
	n   int
}

func scratch(f *testing.F) *scratchDir { return &scratchDir{dir: f.TempDir()} }

// write stores data in a new file and returns its path.
func (s *scratchDir) write(t *testing.T, data []byte) string {
	t.Helper()
	s.n++
	path := filepath.Join(s.dir, strconv.Itoa(s.n)+".snapshot")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteFile writes what snapshotFile builds, which the fuzz targets use in
// its place.
func TestWriteFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.snapshot")
	for _, body := range [][]byte{baseSnapshot().Full(false), nil, []byte("not json\n")} {
		if err := WriteFile(path, body); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := snapshotFile(body); !bytes.Equal(got, want) {
			t.Errorf("WriteFile wrote %q; want %q", got, want)
		}
	}
}

// A snapshot file of format 1 (the SHA-256 of its body in its header),
// as a proxy of an earlier version left it in its cache directory, is
// read as it was; damaged, it is ErrCorrupt.
func TestReadFileReadsFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.snapshot")
	body := baseSnapshot().Full(false)
	if err := os.WriteFile(path, snapshotFileV1(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(path)
	if err != nil {
		t.Fatalf("a format 1 file: %v", err)
	}
	var want Message
	if err := json.Unmarshal(body, &want); err != nil || !reflect.DeepEqual(asUnmarshaled(m), want) {
		t.Fatalf("a format 1 file reads as %+v; want %+v (%v)", *m, want, err)
	}
	damaged := snapshotFileV1(body)
	damaged[len(damaged)-3] ^= 1
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged format 1 file: %v; want ErrCorrupt", err)
	}
}

// snapshotFile is what WriteFile writes for body, built by hand.
func snapshotFile(body []byte) []byte {
	return append(fmt.Appendf(nil, "%s%08x\n", fileMagic, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))), body...)
}

// snapshotFileV1 is what WriteFile wrote for body in format 1, which
// ReadFile still reads.
func snapshotFileV1(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append([]byte(fileMagicV1+hex.EncodeToString(sum[:])+"\n"), body...)
}

// baseSnapshot and nextSnapshot are two tables of the stream: next changes
// one deployment, drops one, adds one and takes a zone down.
func baseSnapshot() *Snapshot {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	b := dep("bbbbbbbb", map[string]int{"blue": 1, "green": 0}, "127.0.0.1:2", "[::1]:3")
	b.Aliases, b.Allow = []string{"prod"}, []string{"10.0.0.0/8"}
	return NewSnapshot(nil, 10, "example.test", map[string]routes.ZoneState{"zone-b": routes.ZoneUp},
		map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b})
}

func nextSnapshot() *Snapshot {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:9")
	c := dep("cccccccc", map[string]int{"blue": 1}, "127.0.0.1:3")
	return NewSnapshot(nil, 12, "example.test", map[string]routes.ZoneState{"zone-a": routes.ZoneDown},
		map[string]*routes.DeploymentSpec{a.ID: a, c.ID: c})
}

func decodeMessage(t *testing.T, b []byte) *Message {
	t.Helper()
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return &m
}

// sameDeployment compares two decoded deployments as the wire sees them:
// every field of the spec, instances in any order, an empty list or map the
// same as none.
func sameDeployment(a, b *routes.DeploymentSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(EncodeDeployment(a), EncodeDeployment(b))
}
