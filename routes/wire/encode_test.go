package wire

import (
	"bytes"
	"math/rand/v2"
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

	m, err := DecodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Apply(nil, m)
	if err != nil {
		t.Fatal(err)
	}
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
