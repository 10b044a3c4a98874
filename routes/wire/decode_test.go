package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// sameAsUnmarshal fails t unless DecodeMessage gives for b what
// json.Unmarshal gives into a Message: the same message, or an error
// for both. It reports whether the fast path decoded b.
func sameAsUnmarshal(t *testing.T, b []byte) bool {
	t.Helper()
	var want Message
	wantErr := json.Unmarshal(b, &want)
	got, err := DecodeMessage(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: DecodeMessage: %v; json.Unmarshal: %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(*got, want) {
		t.Fatalf("%q:\nDecodeMessage  %+v\njson.Unmarshal %+v", b, *got, want)
	}
	_, fast := decodeFast(b)
	return fast
}

// messages are full tables and deltas as route servers send them.
func messages() [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	deps := map[string]*routes.DeploymentSpec{}
	for range 20 {
		d := randomSpec(rng)
		deps[d.ID] = d
	}
	base := NewHashedSnapshot(HashSum, nil, 7, "example.test", map[string]routes.ZoneState{"zone-a": routes.ZoneDown}, deps)
	next := NextSnapshot(HashSum, base, 9, "example.test", nil, map[string]*routes.DeploymentSpec{
		base.deps.chunks[0][0].id: nil, "00000000000000ff": randomSpec(rng)})
	delta, _ := next.DeltaOver(base.Version, base.Hash, []*Change{next.Change()}, true)
	return [][]byte{base.Full(false), next.Full(true), next.Delta(base, false), delta, append([]byte(" \n"), append(base.Full(false), '\n')...),
		[]byte(`{}`), []byte(`null`), []byte(`{"deployments":[],"deleted":[],"zones":{}}`),
		[]byte(`{"deployments":null,"deleted":null,"zones":null}`)}
}

// DecodeMessage decodes what route servers send by hand, and anything,
// mutated or not, to what json.Unmarshal gives (or fails where it
// fails).
func TestDecodeMessageAgreesWithUnmarshal(t *testing.T) {
	for _, b := range messages() {
		if !sameAsUnmarshal(t, b) && b[0] == '{' {
			t.Errorf("%.80s...: not decoded by hand", b)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := messages()
	fast := 0
	for range 20000 {
		b := msgs[rng.IntN(len(msgs))]
		for range 1 + rng.IntN(3) {
			if len(b) > 0 {
				b = mutate(rng, b)
			}
		}
		if sameAsUnmarshal(t, b) {
			fast++
		}
	}
	t.Logf("%d of 20000 mutated messages decoded by hand", fast)
	if fast < 2000 {
		t.Errorf("%d of 20000 mutated messages decoded by hand; want more: the mutations of a deployment's bytes keep the envelope", fast)
	}
}

// The deployments of a message decoded by hand are slices of its bytes,
// each capped at its end, so that appending to one cannot overwrite the
// next; the strings are copies.
func TestDecodeMessageKeepsItsBytes(t *testing.T) {
	b := messages()[0]
	m, err := DecodeMessage(b)
	if err != nil || len(m.Deployments) < 2 {
		t.Fatalf("DecodeMessage: %v, %d deployments", err, len(m.Deployments))
	}
	d0 := m.Deployments[0]
	if cap(d0) != len(d0) {
		t.Errorf("deployment 0 has room for %d more bytes; want none", cap(d0)-len(d0))
	}
	if !bytes.Contains(b, d0) || &b[bytes.Index(b, d0)] != &d0[0] {
		t.Error("deployment 0 is a copy; want a slice of the message")
	}
	hash := m.Hash
	for i := range b {
		b[i] = ' '
	}
	if m.Hash != hash {
		t.Error("the hash changed with the message's bytes; want a copy")
	}
}

// Each deployment of a message is checked as json.Valid checks it, nested
// values, escapes and numbers included.
func TestSkipValueAgreesWithValid(t *testing.T) {
	values := []string{`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{ "a" : -0.5e+3 }`, `{"a":01}`, `{"a":1.}`,
		`{"a":"\x"}`, `{"a":"\u00g0"}`, `{"a":tru}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `{"a":[1,]}`, "{\"a\":\"\x01\"}", `{"a":"` + "\xff" + `"}`,
		`{"a":-}`, `{"a":1e}`, `{"a":[]}`, `{"a":{}}`, "{\"a\":\t[ 1 ,\r\n2 ] }", strings.Repeat("[", 70) + strings.Repeat("]", 70)}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 5000 {
		v := EncodeDeployment(randomSpec(rng))
		values = append(values, string(mutate(rng, v)))
	}
	for _, v := range values {
		b := []byte(v)
		end, ok := skipValue(b, skipSpace(b, 0), 0)
		valid := ok && skipSpace(b, end) == len(b)
		if valid && !json.Valid([]byte(v)) {
			t.Errorf("skipValue accepts %q; json.Valid does not", v)
		}
		if !valid && json.Valid([]byte(v)) && !strings.HasPrefix(v, strings.Repeat("[", maxDepth)) {
			// (A value nested deeper than maxDepth is json.Unmarshal's.)
			t.Errorf("skipValue refuses %q (end %d); json.Valid accepts it", v, end)
		}
	}
}

// FuzzDecodeMessage holds DecodeMessage to json.Unmarshal on any input.
func FuzzDecodeMessage(f *testing.F) {
	for _, b := range messages() {
		f.Add(b)
	}
	f.Add([]byte(fmt.Sprintf(`{"version":%d}`, uint64(1)<<63)))
	f.Add([]byte(`{"Version":1,"hash":"x","hash":"y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsUnmarshal(t, b)
	})
}
