package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// randomSpec makes a deployment with every field used now and then, and
// strings that json.Marshal escapes.
func randomSpec(rng *rand.Rand) *routes.DeploymentSpec {
	plain := []string{"blue", "green", "zone-a", "zone-b", "é", "x", "Upper"}
	escaped := []string{"<b>", "a&b", "\u2028", `q"q`, `back\slash`, "tab\t"}
	w := func() string {
		if rng.IntN(40) == 0 {
			return escaped[rng.IntN(len(escaped))]
		}
		return plain[rng.IntN(len(plain))]
	}
	d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", rng.Uint64()), Kind: []string{"es", "kb", w()}[rng.IntN(3)]}
	if rng.IntN(3) == 0 {
		d.DisplayName = w() + " " + w()
	}
	for range rng.IntN(3) {
		d.Aliases = append(d.Aliases, w())
	}
	for range rng.IntN(3) {
		d.Allow = append(d.Allow, w())
	}
	if rng.IntN(8) != 0 {
		d.Serving = map[string]int{}
		for range rng.IntN(4) {
			d.Serving[w()] = rng.IntN(300) - 50
		}
	}
	for i := range rng.IntN(5) {
		d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprint("i-", i, w()), Addr: "10.0.0.1:" + fmt.Sprint(9200+i),
			Zone: w(), Generation: w(), Maintenance: rng.IntN(3) == 0})
	}
	return d
}

// The fast decoder decodes what EncodeDeployment writes when it has no
// escape, to the same spec as json.Unmarshal; on anything else, when it
// says it decoded, it agrees with json.Unmarshal.
func TestFastDecoderAgreesWithUnmarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	f := newFastDecoder()
	fast := 0
	for i := range 20000 {
		b := EncodeDeployment(randomSpec(rng))
		mutated := i%2 == 1
		if mutated {
			b = mutate(rng, b)
		}
		got, ok := f.decode(b)
		var want routes.DeploymentSpec
		err := json.Unmarshal(b, &want)
		if !ok {
			if !mutated && !bytes.ContainsRune(b, '\\') {
				t.Fatalf("the fast decoder refuses EncodeDeployment's %s", b)
			}
			continue // an escape, or not EncodeDeployment's form: json.Unmarshal's
		}
		fast++
		if err != nil {
			t.Fatalf("fast decoder accepted %s, which json.Unmarshal refuses: %v", b, err)
		}
		if again := appendEncoding(nil, got); !bytes.Equal(again, b) {
			t.Fatalf("fast decoder accepted %s, which is encoded again as %s", b, again)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%s:\nfast      %+v\nUnmarshal %+v", b, *got, want)
		}
	}
	if fast < 2000 {
		t.Errorf("the fast decoder decoded %d of 20000; want every one without escapes", fast)
	}
	t.Logf("%d of 20000 decoded by the fast decoder", fast)
}

// mutate changes one byte, drops one, or repeats a run of b.
func mutate(rng *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	i := rng.IntN(len(b))
	switch rng.IntN(4) {
	case 0:
		const set = " ,:{}[]\"\\0123456789-etrufalsn<&"
		b[i] = set[rng.IntN(len(set))]
	case 1:
		b = append(b[:i], b[i+1:]...)
	case 2:
		j := min(len(b), i+1+rng.IntN(20))
		b = append(b[:j:j], b[i:]...)
	default:
		b = append(b[:i:i], append([]byte(" "), b[i:]...)...)
	}
	return b
}

// Every field of a deployment is decoded by the fast decoder: a field
// added to routes.DeploymentSpec or routes.Instance without it makes the
// route stream fall back to json.Unmarshal for every deployment, which
// this test catches.
func TestFastDecoderKnowsEveryField(t *testing.T) {
	d := &routes.DeploymentSpec{}
	fill(reflect.ValueOf(d).Elem())
	b := EncodeDeployment(d)
	got, ok := newFastDecoder().decode(b)
	if !ok {
		t.Fatalf("the fast decoder refuses a deployment with every field set: %s", b)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("fast decoder: %+v; want %+v", got, d)
	}
}

// fill sets every field of v to a value that is not its zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	case reflect.String:
		v.SetString("v")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int:
		v.SetInt(7)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem())
		v.Set(p)
	default:
		panic("fill: a field of kind " + v.Kind().String())
	}
}

// What a fastDecoder keeps once is shared only where the bytes are the
// same: deployments with the same serving bytes share one map, those
// with other bytes (another weight, another order, a '}' in a name) get
// their own, and every string is a copy, never the bytes it was decoded
// from, which the caller may reuse.
func TestFastDecoderSharesOnlyTheSame(t *testing.T) {
	f := newFastDecoder()
	enc := func(serving string, ids ...string) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"id":"00000000000000aa","kind":"es","serving":%s,"instances":[`, serving)
		for i, id := range ids {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%q,"addr":"10.0.0.%d:9200","zone":"zone-a","generation":"blue"}`, id, i+1)
		}
		b.WriteString("]}")
		return b.Bytes()
	}
	decode := func(b []byte) *routes.DeploymentSpec {
		t.Helper()
		d, ok := f.decode(b)
		if !ok {
			t.Fatalf("the fast decoder refuses %s", b)
		}
		return d
	}
	buf := enc(`{"blue":1}`, "i-1", "i-2")
	a := decode(buf)
	b := decode(enc(`{"blue":1}`, "i-1"))
	if reflect.ValueOf(a.Serving).UnsafePointer() != reflect.ValueOf(b.Serving).UnsafePointer() {
		t.Error("two deployments serving {\"blue\":1} have two maps; want one shared")
	}
	for _, serving := range []string{`{"blue":2}`, `{"blue":1,"green":0}`, `{"blue}":1}`} {
		c := decode(enc(serving, "i-1"))
		if reflect.ValueOf(c.Serving).UnsafePointer() == reflect.ValueOf(a.Serving).UnsafePointer() {
			t.Errorf("serving %s shares the map of {\"blue\":1}", serving)
		}
		var want map[string]int
		if err := json.Unmarshal([]byte(serving), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Serving, want) {
			t.Errorf("serving %s: got %v; want %v", serving, c.Serving, want)
		}
	}
	// What json.Marshal does not write is not the fast decoder's.
	for _, b := range [][]byte{enc(`{"green":0,"blue":1}`, "i-1"), enc(`{"blue":-0}`, "i-1"), enc(`{"blue":1}`, "i-2", "i-1"),
		enc(`{"a<b":1}`, "i-1"), enc(`{"a&b":1}`, "i-1"), enc("{\"a\u2028\":1}", "i-1"), enc("{\"a\u2029\":1}", "i-1")} {
		if _, ok := f.decode(b); ok {
			t.Errorf("the fast decoder accepts %s, which json.Marshal does not write", b)
		}
	}
	// The decoded strings, interned or not, outlive their bytes.
	before := *a.Instances[1]
	for i := range buf {
		buf[i] = 'x'
	}
	again := decode(enc(`{"blue":1}`, "i-1", "i-2"))
	if *a.Instances[1] != before || a.ID != "00000000000000aa" || a.Serving["blue"] != 1 || *again.Instances[1] != before {
		t.Errorf("overwriting the decoded bytes changed the deployment: %+v, %+v; want %+v", *a.Instances[1], *again.Instances[1], before)
	}
	if a.Instances[0] == b.Instances[0] {
		t.Error("two deployments share an instance")
	}
}

// A table whose names and serving maps are all different decodes the
// same past the bounds of what a decoder keeps once.
func TestFastDecoderPastItsBounds(t *testing.T) {
	f := newFastDecoder()
	for i := range maxInterned + maxServing + 10 {
		want := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: fmt.Sprint("k", i), Serving: map[string]int{fmt.Sprint("g", i): i + 1},
			Instances: []*routes.Instance{{ID: fmt.Sprint("i-", i), Addr: "10.0.0.1:9200", Zone: fmt.Sprint("z", i), Generation: fmt.Sprint("g", i)}}}
		got, ok := f.decode(EncodeDeployment(want))
		if !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("deployment %d: got %+v (%v); want %+v", i, got, ok, want)
		}
	}
	if len(f.intern) > maxInterned || len(f.servings) > maxServing {
		t.Errorf("the decoder keeps %d names and %d serving maps; want at most %d and %d", len(f.intern), len(f.servings), maxInterned, maxServing)
	}
}
