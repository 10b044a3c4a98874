package wire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// appendEncoding writes what EncodeDeployment writes, for any spec:
// escapes, instances in any order, a null instance, empty lists and maps.
func TestAppendEncodingIsEncodeDeployment(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	buf := []byte("prefix")
	for i := range 20000 {
		d := randomSpec(rng)
		rng.Shuffle(len(d.Instances), func(i, j int) { d.Instances[i], d.Instances[j] = d.Instances[j], d.Instances[i] })
		if i%500 == 0 && len(d.Instances) > 0 {
			d.Instances[rng.IntN(len(d.Instances))] = nil
		}
		if i%7 == 0 && len(d.Instances) > 1 && d.Instances[0] != nil && d.Instances[1] != nil {
			d.Instances[1].ID = d.Instances[0].ID // the same ID twice: the order of the two is kept
			d.Instances[1].Addr = "10.9.9.9:1"
		}
		want := EncodeDeployment(d)
		got := appendEncoding(buf[:6], d)
		if string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
			t.Fatalf("appendEncoding:\n%s\nEncodeDeployment:\n%s", got[6:], want)
		}
		buf = got
	}
}

// A state keeps a deployment's encoding only when encoding its spec
// again does not give it back, and then as a copy, not as a slice of
// the message; either way it yields, and writes to disk, the bytes it
// was sent.
func TestStateKeepsOnlyEncodingsItCannotMakeAgain(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1", "127.0.0.1:2")
	b := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:3")
	snap := NewHashedSnapshot(HashSum, nil, 3, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b})
	full := snap.Full(false)
	// b's instances' keys in another order: valid, not EncodeDeployment's.
	encB, _ := snap.Encoding(b.ID)
	odd := bytes.Replace(encB, []byte(`"zone":"zone-a","generation":"blue"`), []byte(`"generation":"blue","zone":"zone-a"`), 1)
	msg := bytes.Replace(full, encB, odd, 1)
	var sum digestSum
	encA, _ := snap.Encoding(a.ID)
	sum.add(encA)
	sum.add(odd)
	msg = bytes.Replace(msg, []byte(snap.Hash), []byte(sumHash("example.test", map[string]string{}, sum)), 1)

	_, st := decodeApplied(t, msg)
	ea, _ := st.deps.Get(a.ID)
	eb, _ := st.deps.Get(b.ID)
	if ea.enc != nil {
		t.Errorf("the state keeps %s's encoding; want it made again from the spec", a.ID)
	}
	if !bytes.Equal(eb.enc, odd) {
		t.Fatalf("the state keeps %s's encoding as %s; want %s", b.ID, eb.enc, odd)
	}
	if i := bytes.Index(msg, odd); &msg[i] == &eb.enc[0] {
		t.Error("the kept encoding is a slice of the message; want a copy")
	}
	for id, enc := range st.All() {
		if want := map[string][]byte{a.ID: encA, b.ID: odd}[id]; !bytes.Equal(enc, want) {
			t.Errorf("state yields %s for %s; want %s", enc, id, want)
		}
	}
	again, err := Apply(nil, decodeMessage(t, st.Full(false)))
	if err != nil || again.Hash != st.Hash {
		t.Errorf("the state's full message applies as %v (hash %s); want hash %s", err, again.Hash, st.Hash)
	}
}

// State.WriteFile writes the file WriteFile writes of the state's full
// message, without holding that message: it allocates a fraction of its
// size.
func TestStateWriteFile(t *testing.T) {
	deps := map[string]*routes.DeploymentSpec{}
	for i := range 3000 {
		d := dep(fmt.Sprintf("%016x", i), map[string]int{"blue": 1}, fmt.Sprintf("10.0.%d.%d:9200", i/250, i%250), "10.1.0.1:9200")
		deps[d.ID] = d
	}
	snap := NewHashedSnapshot(HashSum, nil, 5, "example.test", map[string]routes.ZoneState{"zone-b": routes.ZoneDown}, deps)
	st, err := Apply(nil, decodeMessage(t, snap.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	want, got := filepath.Join(dir, "want"), filepath.Join(dir, "got")
	full := st.Full(true)
	if err := WriteFile(want, full); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	size, err := st.WriteFile(got, true)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if size != int64(len(full)) {
		t.Errorf("State.WriteFile says it wrote %d bytes; the message has %d", size, len(full))
	}
	a, _ := os.ReadFile(want)
	b, _ := os.ReadFile(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("State.WriteFile wrote %d bytes unlike WriteFile's %d", len(b), len(a))
	}
	if m, err := ReadFile(got); err != nil || m.Hash != st.Hash || !m.Stale {
		t.Fatalf("reading it back: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(full))/2 {
		t.Errorf("State.WriteFile allocated %d bytes for a message of %d; want at most half", n, len(full))
	}
}
