package routesfile

import (
	"reflect"
	"strings"
	"testing"
)

// A spec field the routes file cannot read is a mistake in the spec, found
// as the package loads.
func TestSpecOfRefuses(t *testing.T) {
	for _, tc := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[struct {
			N int `yaml:"n"`
		}](), "cannot read a int"},
		{reflect.TypeFor[struct {
			L []string `yaml:"l"`
		}](), "has no item tag"},
		{reflect.TypeFor[struct{ S string }](), "has no yaml key"},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), tc.want) {
					t.Errorf("specOf(%v): panic %v; want one saying %q", tc.typ, r, tc.want)
				}
			}()
			specOf(tc.typ)
		}()
	}
}
