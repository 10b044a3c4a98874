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
	if err == nil && !reflect.DeepEqual(asUnmarshaled(got), want) {
		t.Fatalf("%q:\nDecodeMessage  %+v\njson.Unmarshal %+v", b, asUnmarshaled(got), want)
	}
	_, fast := decodeFast(b)
	return fast
}

// asUnmarshaled is m without what DecodeMessage decoded for Apply: the message
// json.Unmarshal gives.
func asUnmarshaled(m *Message) Message {
	c := *m
	c.decoded = nil
	return c
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

// A full message as route servers write it is cut into its deployments
// where one ends and the next begins, and decoded while it is read; a
// message that is not in that form, or whose pieces do not decode, is
// read as before, and gives what json.Unmarshal gives.
func TestDecodeMessageSplitsDeployments(t *testing.T) {
	full := baseSnapshot().Full(false)
	m, err := DecodeMessage(full)
	if err != nil {
		t.Fatal(err)
	}
	if m.decoded == nil || len(m.decoded.deps) != 2 {
		t.Fatal("a route server's full message was not split and decoded while read")
	}
	a, b := string(m.Deployments[0]), string(m.Deployments[1])
	for name, msg := range map[string]string{
		// Not split where the separator is not followed by "kind".
		"kind not second": strings.Replace(string(full), `{"id":"bbbbbbbb","kind":"es",`, `{"id":"bbbbbbbb","display_name":"b","kind":"es",`, 1),
		"space between":   strings.Replace(string(full), a+","+b, a+", "+b, 1),
		// The separator in a string is escaped, so not one.
		"separator in a name": strings.Replace(string(full), `"aliases":["prod"]`, `"display_name":"},{\"id\":\"x\",\"kind\":\"es\"","aliases":["prod"]`, 1),
		// Split, but a piece does not decode: a list that is a string.
		"bad field": strings.Replace(string(full), `"aliases":["prod"]`, `"aliases":"prod"`, 1),
		// Split inside a deployment: an instance's second key is kind.
		"instance with kind": strings.Replace(string(full), `{"id":"i-b","addr"`, `{"id":"i-b","kind":"es","addr"`, 1),
	} {
		if msg == string(full) {
			t.Fatalf("%s: the message did not change", name)
		}
		sameAsUnmarshal(t, []byte(msg))
		if m, err := DecodeMessage([]byte(msg)); err == nil && name != "separator in a name" && m.decoded != nil {
			t.Errorf("%s: decoded while read; want read as before", name)
		}
	}
}

// Apply takes the deployments DecodeMessage decoded only while the
// message's Deployments are still the JSON they were decoded from.
func TestApplyUsesDecodedDeploymentsOfTheirBytes(t *testing.T) {
	full := baseSnapshot().Full(false)
	m, st := decodeApplied(t, full)
	if e, _ := st.deps.Get("aaaaaaaa"); e != m.decoded.deps[0] {
		t.Error("Apply decoded the deployments again")
	}
	m, _ = DecodeMessage(bytes.Clone(full))
	m.Deployments[0] = bytes.Replace(m.Deployments[0], []byte("127.0.0.1:1"), []byte("127.0.0.1:7"), 1)
	if _, err := Apply(nil, m); err == nil {
		t.Error("Apply of a message whose deployment changed after it was read took what was read: want the hash refused")
	}
}

// A deployment nested deeper than DecodeMessage takes, in a message cut
// into its deployments, is refused as json.Unmarshal refuses the message
// (within it, the deployment is deeper than encoding/json's limit).
func TestSplitDeploymentsKeepsTheNestingLimit(t *testing.T) {
	full := string(baseSnapshot().Full(false))
	deep := strings.Repeat("[", 9999) + strings.Repeat("]", 9999)
	msg := strings.Replace(full, `{"id":"aaaaaaaa",`, `{"x":`+deep+`,"id":"aaaaaaaa",`, 1)
	sameAsUnmarshal(t, []byte(msg))
}

// A message DecodeMessage read, decoded again over by json.Unmarshal
// (which may write its deployments where the old ones were), is applied
// as the new message says, not as the old one's decoded deployments.
func TestUnmarshalOverADecodedMessage(t *testing.T) {
	one := baseSnapshot().Full(false)
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:8")
	b := dep("bbbbbbbb", map[string]int{"blue": 1, "green": 0}, "127.0.0.1:2", "[::1]:3")
	b.Aliases, b.Allow = []string{"prod"}, []string{"10.0.0.0/8"}
	two := NewSnapshot(nil, 10, "example.test", map[string]routes.ZoneState{"zone-b": routes.ZoneUp},
		map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b}).Full(false)
	if len(one) != len(two) {
		t.Fatal("want messages of one length")
	}
	m, err := DecodeMessage(bytes.Clone(one))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(two, m); err != nil {
		t.Fatal(err)
	}
	st, err := Apply(nil, m)
	if err != nil {
		t.Fatalf("Apply of the message decoded over: %v", err)
	}
	if e, _ := st.deps.Get("aaaaaaaa"); e.dep.Instances[0].Addr != "127.0.0.1:8" {
		t.Errorf("applied %s; want the new message's 127.0.0.1:8", e.dep.Instances[0].Addr)
	}
}

// decodeApplied decodes msg, a full message, with DecodeMessage and
// applies it to no state.
func decodeApplied(t *testing.T, msg []byte) (*Message, *State) {
	t.Helper()
	m, err := DecodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Apply(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}
