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

// Status is a picture of zones and health, for the admin status page.
type Status struct {
	LocalZone string           `json:"local_zone,omitempty"`
	Zones     []ZoneStatus     `json:"zones"`
	Instances []InstanceStatus `json:"instances"`
	// Deployments lists the deployments with an unhealthy eligible
	// instance.
	Deployments []DeploymentStatus `json:"deployments"`
	Stats       Stats              `json:"stats"`
}

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

// Status describes the current table's zones and instances.
func (b *Balancer) Status() Status {
	st := Status{LocalZone: b.cfg.LocalZone, Stats: b.Stats()}
	s := b.snap.Load()
	if s == nil {
		return st
	}
	now := b.now()
	base := int64(b.cfg.BaseEjection)
	checks := b.cfg.Check.Path != ""

	type zoneCount struct{ eligible, healthy int }
	zones := map[string]*zoneCount{}
	seen := map[*instState]bool{}
	zoneOf := func(name string) *zoneCount {
		z := zones[name]
		if z == nil {
			z = &zoneCount{}
			zones[name] = z
		}
		return z
	}
	for name := range s.table.Zones {
		zoneOf(name)
	}
	for _, d := range s.table.Deployments {
		ds := s.deps[d]
		eligible := make(map[*routes.Instance]bool, len(d.Eligible))
		for _, in := range d.Eligible {
			eligible[in] = true
		}
		for _, in := range d.Instances {
			e := s.byPtr[in]
			is := e.st
			z := zoneOf(in.Zone)
			healthy := is.healthy(now)
			if eligible[in] && !seen[is] {
				seen[is] = true
				z.eligible++
				if healthy {
					z.healthy++
				}
			}
			x := InstanceStatus{
				Deployment:          d.ID,
				ID:                  in.ID,
				Addr:                in.Addr,
				Zone:                in.Zone,
				Eligible:            eligible[in],
				Healthy:             healthy,
				Ejected:             is.ejected(now),
				TimesEjected:        int(is.decayedTimes(now, base)),
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
			st.Instances = append(st.Instances, x)
		}
		v := b.viewOf(ds)
		if v.healthyShare < 1 && len(d.Eligible) > 0 {
			dst := DeploymentStatus{ID: d.ID, Panic: v.panic, HealthyShare: v.healthyShare, LocalShare: v.localShare}
			for zi, name := range ds.zones {
				if v.zoneHealthy[zi] == 0 {
					dst.DownZones = append(dst.DownZones, name)
				}
			}
			st.Deployments = append(st.Deployments, dst)
		}
	}
	names := make([]string, 0, len(zones))
	for name := range zones {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		z := zones[name]
		zs := ZoneStatus{Name: name, State: StateUp, Eligible: z.eligible, Healthy: z.healthy}
		switch {
		case s.table.Zones[name] == routes.ZoneDown:
			zs.State, zs.Reason, zs.Why = StateDown, ReasonOperator, "set down by the operator"
		case z.eligible > 0 && z.healthy == 0:
			zs.State, zs.Reason = StateDown, ReasonObserved
			zs.Why = fmt.Sprintf("all %d eligible instances are ejected or failing checks", z.eligible)
		}
		st.Zones = append(st.Zones, zs)
	}
	return st
}
