package zones

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// Stats are the balancer's counters since it was made, for metrics.
type Stats struct {
	Ejections        uint64 // instances ejected
	EjectionsSkipped uint64 // ejections skipped for MaxEjectedPercent
	PanicPicks       uint64 // picks made in panic mode
	NoInstance       uint64 // picks that found no instance
	Unprepared       uint64 // picks in a deployment Prepare had not seen
	Checks           uint64 // active checks done
	CheckFailures    uint64 // active checks failed
	MarkedUnhealthy  uint64 // instances that active checks made unhealthy
	MarkedHealthy    uint64 // instances that active checks made healthy again
}

type counters struct {
	ejections, ejectionsSkipped, panicPicks, noInstance, unprepared atomic.Uint64
	checks, checkFailures, markedUnhealthy, markedHealthy           atomic.Uint64
}

// Stats returns the counters.
func (b *Balancer) Stats() Stats {
	c := &b.stats
	return Stats{
		Ejections:        c.ejections.Load(),
		EjectionsSkipped: c.ejectionsSkipped.Load(),
		PanicPicks:       c.panicPicks.Load(),
		NoInstance:       c.noInstance.Load(),
		Unprepared:       c.unprepared.Load(),
		Checks:           c.checks.Load(),
		CheckFailures:    c.checkFailures.Load(),
		MarkedUnhealthy:  c.markedUnhealthy.Load(),
		MarkedHealthy:    c.markedHealthy.Load(),
	}
}

// Zone states and the reasons for "down".
const (
	StateUp   = "up"
	StateDown = "down"

	ReasonOperator = "operator" // set down in the table
	ReasonObserved = "observed" // every eligible instance is unhealthy
)

// Status is a picture of zones and health, for the admin status page:
// the zones and the unhealthy deployments of the whole table, and the
// instances of the deployments asked for.
type Status struct {
	LocalZone string       `json:"local_zone,omitempty"`
	Zones     []ZoneStatus `json:"zones"`
	// Instances are the instances of the deployments asked for, in their
	// order.
	Instances []InstanceStatus `json:"instances"`
	// Deployments lists the deployments with an unhealthy eligible
	// instance, by ID: the first MaxUnhealthyListed of them.
	Deployments []DeploymentStatus `json:"deployments"`
	// UnhealthyDeployments counts them all.
	UnhealthyDeployments int   `json:"unhealthy_deployments"`
	Stats                Stats `json:"stats"`
}

// MaxUnhealthyListed bounds Status.Deployments.
const MaxUnhealthyListed = 100

// ZoneStatus is one zone of the table.
type ZoneStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"`            // StateUp or StateDown
	Reason string `json:"reason,omitempty"` // for StateDown: ReasonOperator or ReasonObserved
	Why    string `json:"why,omitempty"`    // in words
	// Eligible and Healthy count the zone's eligible instances over all
	// deployments, and how many are healthy.
	Eligible int `json:"eligible"`
	Healthy  int `json:"healthy"`
}

// InstanceStatus is one instance of one deployment.
type InstanceStatus struct {
	Deployment string `json:"deployment"`
	ID         string `json:"id"`
	Addr       string `json:"addr"`
	Zone       string `json:"zone"`
	Eligible   bool   `json:"eligible"`
	Healthy    bool   `json:"healthy"`

	Ejected             bool      `json:"ejected"`
	EjectedUntil        time.Time `json:"ejected_until,omitzero"`
	TimesEjected        int       `json:"times_ejected"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Outstanding         int64     `json:"outstanding"`

	Check      string    `json:"check"` // "off", "unknown", "healthy", "unhealthy"
	CheckError string    `json:"check_error,omitempty"`
	CheckedAt  time.Time `json:"checked_at,omitzero"`
}

// DeploymentStatus is the health of one deployment.
type DeploymentStatus struct {
	ID           string  `json:"id"`
	Panic        bool    `json:"panic"`
	HealthyShare float64 `json:"healthy_share"` // by weight
	LocalShare   float64 `json:"local_share"`   // a: probability of the local zone
	// DownZones are the deployment's zones with no healthy instance.
	DownZones []string `json:"down_zones,omitempty"`
}

// Status describes the current table's zones and unhealthy deployments,
// and the instances of the deployments in page (of the current table or
// of an earlier one). Its cost is that of the zones, the instances whose
// health changed (ejected or failing checks, or were) and the page, not
// that of the table: the zones' eligible instances are counted when a
// table is prepared, and only the instances whose health changed are
// looked at.
func (b *Balancer) Status(page []*routes.Deployment) Status {
	st := Status{LocalZone: b.cfg.LocalZone, Stats: b.Stats()}
	s := b.snap.Load()
	if s == nil {
		return st
	}
	now := b.now()
	checks := b.cfg.Check.Path != ""
	for _, d := range page {
		eligible := make(map[*routes.Instance]bool, len(d.Eligible))
		for _, in := range d.Eligible {
			eligible[in] = true
		}
		for _, in := range d.Instances {
			e := b.lookup(in)
			if e == nil {
				continue // not in the current table
			}
			st.Instances = append(st.Instances, b.instanceStatus(d, in, e.state(), eligible[in], now, checks))
		}
	}

	// The unhealthy instances of the table, by zone, and the deployments
	// that have them eligible.
	unhealthy := map[string]int{}
	deps := map[*depState]bool{}
	for _, e := range b.unhealthy(s, now) {
		el := e.eligible()
		unhealthy[el.zone]++
		for _, ds := range el.deps {
			deps[ds] = true
		}
	}
	for ds := range deps {
		v := b.viewOf(ds)
		if v.healthyShare >= 1 || len(ds.d.Eligible) == 0 {
			continue
		}
		st.UnhealthyDeployments++
		dst := DeploymentStatus{ID: ds.d.ID, Panic: v.panic, HealthyShare: v.healthyShare, LocalShare: v.localShare}
		for zi, name := range ds.zones {
			if v.zoneHealthy[zi] == 0 {
				dst.DownZones = append(dst.DownZones, name)
			}
		}
		st.Deployments = append(st.Deployments, dst)
	}
	sort.Slice(st.Deployments, func(i, j int) bool { return st.Deployments[i].ID < st.Deployments[j].ID })
	if len(st.Deployments) > MaxUnhealthyListed {
		st.Deployments = st.Deployments[:MaxUnhealthyListed]
	}

	names := make([]string, 0, len(s.zones)+len(s.table.Zones))
	for name := range s.zones {
		names = append(names, name)
	}
	for name := range s.table.Zones {
		if _, ok := s.zones[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		eligible := s.zones[name]
		zs := ZoneStatus{Name: name, State: StateUp, Eligible: eligible, Healthy: eligible - unhealthy[name]}
		switch {
		case s.table.Zones[name] == routes.ZoneDown:
			zs.State, zs.Reason, zs.Why = StateDown, ReasonOperator, "set down by the operator"
		case zs.Eligible > 0 && zs.Healthy == 0:
			zs.State, zs.Reason = StateDown, ReasonObserved
			zs.Why = fmt.Sprintf("all %d eligible instances are ejected or failing checks", zs.Eligible)
		}
		st.Zones = append(st.Zones, zs)
	}
	return st
}

// unhealthy returns the entries of s that are eligible somewhere and
// unhealthy at now, from the suspects; it drops the suspects that are
// healthy again or no longer in the table.
func (b *Balancer) unhealthy(s *snapshot, now int64) []*entry {
	b.suspectMu.Lock()
	defer b.suspectMu.Unlock()
	var out []*entry
	for st := range b.suspects {
		e := s.entry(st.key)
		switch {
		case e == nil || e.st.Load() != st:
			if p := s.prevOrNil(); p == nil || p.entry(st.key) == nil {
				delete(b.suspects, st) // gone from the table
			}
		case st.healthy(now):
			delete(b.suspects, st)
		case len(e.eligible().deps) > 0:
			out = append(out, e)
		}
	}
	return out
}

func (b *Balancer) instanceStatus(d *routes.Deployment, in *routes.Instance, is *instState, eligible bool, now int64, checks bool) InstanceStatus {
	x := InstanceStatus{
		Deployment:          d.ID,
		ID:                  in.ID,
		Addr:                in.Addr,
		Zone:                in.Zone,
		Eligible:            eligible,
		Healthy:             is.healthy(now),
		Ejected:             is.ejected(now),
		TimesEjected:        int(is.decayedTimes(now, int64(b.cfg.BaseEjection))),
		ConsecutiveFailures: int(is.consecutive.Load()),
		Outstanding:         is.outstanding.Load(),
		Check:               "off",
	}
	if x.Ejected {
		x.EjectedUntil = time.Unix(0, is.ejectedUntil.Load())
	}
	if checks {
		x.Check = checkNames[is.check.Load()]
		if p := is.checkErr.Load(); p != nil {
			x.CheckError = *p
		}
		if at := is.checkedAt.Load(); at != 0 {
			x.CheckedAt = time.Unix(0, at)
		}
	}
	return x
}
