package wire

import (
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/routes"
)

// appendEncoding appends EncodeDeployment(d) to b: the same bytes (a
// test holds them to it), several times faster and without allocating
// for a deployment whose strings need no escape. It leaves those that
// do (a string with a byte that json.Marshal escapes or that is not
// ASCII, a null instance) to EncodeDeployment.
func appendEncoding(b []byte, d *routes.DeploymentSpec) []byte {
	start := len(b)
	if b, ok := appendPlain(b, d); ok {
		return b
	}
	return append(b[:start], EncodeDeployment(d)...)
}

// appendPlain is appendEncoding for a deployment whose strings are plain
// (see plain); it reports false for any other.
func appendPlain(b []byte, d *routes.DeploymentSpec) ([]byte, bool) {
	ok := true
	str := func(s string) {
		if !plain(s) {
			ok = false
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	list := func(key string, l []string) {
		if len(l) == 0 {
			return
		}
		b = append(b, key...)
		for i, s := range l {
			if i > 0 {
				b = append(b, ',')
			}
			str(s)
		}
		b = append(b, ']', ',')
	}
	b = append(b, `{"id":`...)
	str(d.ID)
	b = append(b, `,"kind":`...)
	str(d.Kind)
	b = append(b, ',')
	if d.DisplayName != "" {
		b = append(b, `"display_name":`...)
		str(d.DisplayName)
		b = append(b, ',')
	}
	list(`"aliases":[`, d.Aliases)
	list(`"allow":[`, d.Allow)
	b = append(b, `"serving":{`...)
	var few [8]string
	gens := few[:0]
	for g := range d.Serving {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	for i, g := range gens {
		if i > 0 {
			b = append(b, ',')
		}
		str(g)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(d.Serving[g]), 10)
	}
	b = append(b, `},"instances":[`...)
	insts := d.Instances
	if !slices.IsSortedFunc(insts, byInstanceID) {
		insts = slices.Clone(insts)
		slices.SortStableFunc(insts, byInstanceID)
	}
	for i, in := range insts {
		if in == nil {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		str(in.ID)
		b = append(b, `,"addr":`...)
		str(in.Addr)
		b = append(b, `,"zone":`...)
		str(in.Zone)
		b = append(b, `,"generation":`...)
		str(in.Generation)
		if in.Maintenance {
			b = append(b, `,"maintenance":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, ']', '}')
	return b, ok
}

func byInstanceID(a, b *routes.Instance) int { return strings.Compare(instanceID(a), instanceID(b)) }

// plain reports whether json.Marshal writes s as it is, between quotes:
// printable ASCII without ", \, <, > or &.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
