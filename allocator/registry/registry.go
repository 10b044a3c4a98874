// Package registry is the allocators' part of the ZooKeeper tree
// (docs/zookeeper.md, "Allocators"): each allocator's registration and
// liveness, the instances assigned to it, and the status it reports for
// each. The allocator, the constructor and yardctl all read and write it
// through this package; each writes only its own part.
//
//	<root>/allocators/<id>                 Allocator (the allocator; maintenance: operators)
//	<root>/allocators/<id>/live            Live, ephemeral (the allocator)
//	<root>/allocators/<id>/assignments/<i> Assignment (the constructor)
//	<root>/allocators/<id>/status/<i>      Status (the allocator)
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Node names under the root and under each allocator.
const (
	allocatorsNode  = "allocators"
	liveNode        = "live"
	assignmentsNode = "assignments"
	statusNode      = "status"
)

// Errors of the package; others wrap them or a ZooKeeper client error.
var (
	// ErrInvalid: a znode's content or a caller's value is not valid.
	ErrInvalid = errors.New("registry: invalid")
	// ErrNotFound: no such allocator.
	ErrNotFound = errors.New("registry: no such allocator")
	// ErrConflict: another writer changed the node between a read and a
	// write guarded by its version.
	ErrConflict = errors.New("registry: concurrent change")
)

// Allocator is the content of <root>/allocators/<id>: what the allocator
// offers. The allocator writes it when it starts, keeping Maintenance,
// which operators set.
type Allocator struct {
	Zone       string            `json:"zone"`
	Capacity   Capacity          `json:"capacity"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Maintenance: no new placements; running instances stay.
	Maintenance bool `json:"maintenance"`
	// Vacate: the constructor moves every instance off the allocator
	// (each replaced on another, swapped in the table, then removed here).
	// Operators set it, with Maintenance.
	Vacate bool `json:"vacate,omitempty"`
}

// Capacity is what an allocator offers to instances.
type Capacity struct {
	MemoryBytes int64 `json:"memory_bytes"`
}

// Live is the content of the ephemeral <root>/allocators/<id>/live: the
// allocator is up while it exists.
type Live struct {
	// Addr is the allocator's admin address ("" without one).
	Addr      string    `json:"addr"`
	StartedAt time.Time `json:"started_at"`
	Version   string    `json:"version"`
	// Host is the address instances listen on and are reached at.
	Host string `json:"host"`
}

// Assignment is the content of <root>/allocators/<id>/assignments/<instance
// id>: an instance the allocator is to run.
type Assignment struct {
	Deployment  string `json:"deployment"`
	Kind        string `json:"kind"`
	Generation  string `json:"generation"`
	Zone        string `json:"zone,omitempty"`
	MemoryBytes int64  `json:"memory_bytes"`
	// Spec is passed to the instance as it is (SWITCHYARD_INSTANCE_SPEC).
	Spec json.RawMessage `json:"spec,omitempty"`
}

// MinMemory is the smallest memory size of an instance.
const MinMemory = 16 << 20

// name is what an allocator ID, an instance ID, a deployment, kind or
// generation may be: a znode name that is also safe as a directory name,
// a cgroup name and an environment value.
var name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName checks an ID given as what.
func CheckName(what, s string) error {
	if !name.MatchString(s) {
		return fmt.Errorf("%w: %s %q: want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, what, s)
	}
	return nil
}

// Validate checks a, whole: the first problem, naming the field.
func (a *Assignment) Validate() error {
	for _, f := range []struct{ what, v string }{
		{"deployment", a.Deployment}, {"kind", a.Kind}, {"generation", a.Generation},
	} {
		if err := CheckName(f.what, f.v); err != nil {
			return err
		}
	}
	if a.Zone != "" {
		if err := CheckName("zone", a.Zone); err != nil {
			return err
		}
	}
	if a.MemoryBytes < MinMemory {
		return fmt.Errorf("%w: memory_bytes %d: want at least %d (16 MiB)", ErrInvalid, a.MemoryBytes, MinMemory)
	}
	if len(a.Spec) > 0 && !json.Valid(a.Spec) {
		return fmt.Errorf("%w: spec is not JSON", ErrInvalid)
	}
	return nil
}

// DecodeAssignment parses and validates an assignment znode's content.
func DecodeAssignment(data []byte) (*Assignment, error) {
	var a Assignment
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// State is an instance's state as its allocator reports it.
type State string

// The states of an instance.
const (
	StateStarting   State = "starting"   // started, not yet healthy
	StateRunning    State = "running"    // healthy
	StateUnhealthy  State = "unhealthy"  // failing its health check
	StateRestarting State = "restarting" // stopped, waiting out its backoff
	StateFailed     State = "failed"     // left stopped: crash loop, bad assignment, no port
	StateStopping   State = "stopping"   // no longer assigned, being stopped
	StateInvalid    State = "invalid"    // the assignment is malformed
)

// Status is the content of <root>/allocators/<id>/status/<instance id>.
type Status struct {
	State    State     `json:"state"`
	Addr     string    `json:"addr,omitempty"`
	Pid      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason,omitempty"`
	// Generation and Deployment repeat the assignment's, so that a
	// reader of the status alone knows what it is about.
	Deployment string `json:"deployment,omitempty"`
	Generation string `json:"generation,omitempty"`
	// Unconfined: the instance runs without its cgroup (the allocator
	// has no cgroup access).
	Unconfined bool `json:"unconfined,omitempty"`
}

// layout names the znodes under one root.
type layout struct{ root string }

func (l layout) allocators() string              { return l.root + "/" + allocatorsNode }
func (l layout) allocator(id string) string      { return l.allocators() + "/" + id }
func (l layout) live(id string) string           { return l.allocator(id) + "/" + liveNode }
func (l layout) assignments(id string) string    { return l.allocator(id) + "/" + assignmentsNode }
func (l layout) assignment(id, in string) string { return l.assignments(id) + "/" + in }
func (l layout) statuses(id string) string       { return l.allocator(id) + "/" + statusNode }
func (l layout) status(id, in string) string     { return l.statuses(id) + "/" + in }

func decodeInto(p string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, p, err)
	}
	return nil
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the package's own types always encode
	}
	return b
}
