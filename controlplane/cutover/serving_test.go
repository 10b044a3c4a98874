package cutover

import (
	"errors"
	"maps"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// target is a deployment with blue instances in zone-a and zone-b and
// green ones in maintenance or in zone-b, which is down.
func target() *Target {
	return &Target{
		Deployment: &routes.DeploymentSpec{ID: "dep", Kind: "es", Serving: map[string]int{"blue": 100, "green": 0},
			Instances: []*routes.Instance{
				{ID: "b1", Zone: "zone-a", Generation: "blue"},
				{ID: "b2", Zone: "zone-b", Generation: "blue"},
				{ID: "g1", Zone: "zone-a", Generation: "green", Maintenance: true},
				{ID: "g2", Zone: "zone-b", Generation: "green"},
			}},
		Zones: map[string]routes.ZoneState{"zone-b": routes.ZoneDown},
	}
}

func TestCanServe(t *testing.T) {
	for _, c := range []struct {
		gen  string
		is   error
		want string
	}{
		{"blue", nil, ""},
		{"green", ErrCannotServe, `generation "green" of dep has no instance able to serve (g1 in maintenance, g2 in zone zone-b which is down)`},
		{"purple", ErrNoInstances, `generation "purple" has no instances in dep (generations: blue, green)`},
	} {
		err := target().CanServe(c.gen)
		var ce *Error
		switch {
		case c.is == nil && err != nil:
			t.Errorf("%s: %v; want nil", c.gen, err)
		case c.is != nil && (!errors.Is(err, c.is) || !errors.As(err, &ce) || err.Error() != c.want):
			t.Errorf("%s: %v; want %q wrapping %v", c.gen, err, c.want, c.is)
		}
	}
}

func TestServingMaps(t *testing.T) {
	tg := target()
	if got, want := tg.Cutover("green"), map[string]int{"blue": 0, "green": 100}; !maps.Equal(got, want) {
		t.Errorf("Cutover(green) = %v; want %v", got, want)
	}
	if got, want := tg.Cutover("purple"), map[string]int{"blue": 0, "green": 0, "purple": 100}; !maps.Equal(got, want) {
		t.Errorf("Cutover(purple) = %v; want %v", got, want)
	}
	got, err := tg.Weights(map[string]int{"green": 10})
	if want := map[string]int{"blue": 0, "green": 10}; err != nil || !maps.Equal(got, want) {
		t.Errorf("Weights(green=10) = %v, %v; want %v", got, err, want)
	}
	_, err = tg.Weights(map[string]int{"blue": 1, "red": 1, "purple": 1})
	if want := `generation "purple" has no instances in dep (generations: blue, green)`; !errors.Is(err, ErrNoInstances) || err.Error() != want {
		t.Errorf("Weights with unknown generations: %v; want %q (the first by name)", err, want)
	}

	if _, err := tg.Rollback(); !errors.Is(err, ErrNoPrevious) || err.Error() != "dep has no previous serving map" {
		t.Errorf("Rollback without a previous map: %v", err)
	}
	// The previous map predates green: green gets 0.
	tg.PreviousServing = map[string]int{"blue": 100}
	if got, err := tg.Rollback(); err != nil || !maps.Equal(got, map[string]int{"blue": 100, "green": 0}) {
		t.Errorf("Rollback = %v, %v; want blue=100,green=0", got, err)
	}
	if tg.PreviousServing["green"] != 0 || len(tg.PreviousServing) != 1 {
		t.Errorf("Rollback changed the target's previous map: %v", tg.PreviousServing)
	}
}
