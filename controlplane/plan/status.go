package plan

import (
	"strings"
	"time"
)

// State is where the change of a plan's revision is.
type State string

// The states of a change. Done, failed and rolled back are final: the
// constructor does nothing more for that revision.
const (
	StatePending    State = "pending"     // the constructor has taken the revision up, nothing done yet
	StateRunning    State = "running"     // the constructor is carrying it out (Step says where)
	StateDone       State = "done"        // the deployment is as the revision says
	StateFailed     State = "failed"      // stopped at Step, traffic untouched (Reason says why)
	StateRolledBack State = "rolled_back" // cut over, then rolled back (Reason says why)
)

// States are the states, in the order a change goes through them.
var States = []State{StatePending, StateRunning, StateDone, StateFailed, StateRolledBack}

// Final reports whether s is done, failed or rolled back.
func (s State) Final() bool { return s == StateDone || s == StateFailed || s == StateRolledBack }

func (s State) known() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// MaxHistory is how many entries a status keeps in History; WriteStatus
// drops the oldest beyond it, so that the znode stays small.
const MaxHistory = 50

// Status is the content of <root>/plans/<deployment>/status: how the
// constructor is carrying out the plan. Only the constructor writes it
// (WriteStatus); yardctl and the admin API read it.
type Status struct {
	State State `json:"state"`
	// Step names what the constructor is doing or did last ("place",
	// "start", "cutover", ...). Empty: not started.
	Step string `json:"step,omitempty"`
	// Revision is the plan revision the status is about.
	Revision int `json:"revision"`
	// Generation is the generation the revision makes, named from it.
	Generation string    `json:"generation,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Reason says why it failed or rolled back. Empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Zxid is the zxid of the revision's cutover (its serving write),
	// which the proxies must apply; 0 before the cutover. A constructor
	// that takes over from another reads it here.
	Zxid int64 `json:"zxid,omitempty"`
	// DrainUntil is when the old generation's drain ends, once it has
	// begun. Zero: not draining.
	DrainUntil time.Time `json:"drain_until,omitzero"`
	// Plan is the plan of the revision being carried out, as it was
	// when the constructor took it up: a later revision does not change
	// what this change does.
	Plan *Plan `json:"plan,omitempty"`
	// Instances are the revision's instances by instance ID.
	Instances map[string]InstanceProgress `json:"instances,omitempty"`
	// History is the earlier steps and outcomes, oldest first, at most
	// MaxHistory.
	History []HistoryEntry `json:"history,omitempty"`
}

// InstanceProgress is one instance of the revision being made.
type InstanceProgress struct {
	Allocator string `json:"allocator"`
	Zone      string `json:"zone"`
	// State is the instance's state as its allocator reports it
	// (registry.State: starting, running, failed, ...).
	State string `json:"state"`
}

// HistoryEntry is one past step or outcome.
type HistoryEntry struct {
	Revision int       `json:"revision"`
	State    State     `json:"state"`
	Step     string    `json:"step,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// Validate checks what WriteStatus writes: a known state and a revision
// of at least 1, here and in every history entry.
func (s *Status) Validate() error {
	if err := s.validate(); err != nil {
		return err
	}
	return nil
}

func (s *Status) validate() *Error {
	if !s.State.known() {
		return invalidf("state", "status: state %q is not %s", string(s.State), statesText())
	}
	if s.Revision < 1 {
		return invalidf("revision", "status: revision %d: want 1 or more", s.Revision)
	}
	for i, h := range s.History {
		if !h.State.known() {
			return invalidf("history", "status: history entry %d: state %q is not %s", i+1, string(h.State), statesText())
		}
	}
	return nil
}

func statesText() string {
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
