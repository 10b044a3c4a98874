// Package zones chooses the instance that serves a request: it keeps zone
// state and instance health, and balances over the healthy instances with a
// preference for the proxy's own zone.
//
// Weighted is the plain weighted-random Picker. Balancer is the zone-aware
// one; its semantics follow Envoy's zone-aware routing, outlier detection
// and panic threshold.
//
// # Health
//
// An instance of d.Eligible (generation weight > 0, not in maintenance,
// zone not set down by the operator) is healthy unless it is ejected or
// actively unhealthy:
//
//   - Ejected (passive outlier detection): ConsecutiveFailures failures in
//     a row (connect error, reset, timeout, 5xx response) eject it for
//     BaseEjection × n, capped at MaxEjection, where n counts its ejections;
//     n loses 1 for each BaseEjection period spent back in service since the
//     last ejection ended. A success resets the consecutive count. An
//     ejection that would make more than MaxEjectedPercent of a deployment's
//     eligible instances ejected at once is skipped (and counted). The
//     instance returns when its time is up; this is checked at pick time
//     against the clock, without timers.
//   - Actively unhealthy: with Check.Path set, each instance of the table is
//     sent GET Check.Path every Check.Interval (±10%). A 2xx or 3xx answer
//     within Check.Timeout passes; anything else fails. UnhealthyThreshold
//     failures in a row mark it unhealthy, HealthyThreshold passes in a row
//     healthy again. An instance not checked yet counts as healthy.
//
// A zone is down when the operator set it down (its instances are not in
// d.Eligible), or, observed, when every eligible instance it has is
// unhealthy. Routing judges that per deployment (a deployment sends nothing
// to a zone where none of its instances is healthy); Status reports a zone
// down when none of its eligible instances, over all deployments, is.
// Health is kept per instance address and ID, so it survives table
// reloads, and is forgotten for instances that leave the table. An
// instance's state is made when something first writes it (its
// deployment's first pick, a request, an active check): until then it is
// healthy with nothing in flight, and a large table whose deployments
// get no requests holds no state for them.
//
// # Balancing
//
// For a deployment d, with weights from d.Weights:
//
//	healthy_share = healthy weight / total weight of d.Eligible
//	panic         = healthy_share < PanicThreshold
//	a             = min(1, 1.4 × healthy_local / total_local)
//
// where total_local and healthy_local are the weights of d's eligible and
// healthy instances in LocalZone, and 1.4 is Envoy's overprovisioning
// factor. A pick goes to the local group with probability a, else to the
// other group (the other zones together); when the chosen group is empty,
// the other one is used, and when both are, there is no instance (503).
// Without LocalZone, or when d has no eligible instance in it, there is one
// group: all zones.
//
// A group holds the healthy instances of its zones. In panic it holds every
// eligible instance of its zones that are not observed down, health
// ignored, so that load spreads instead of crushing the few healthy ones
// left (a stays computed from health). When nothing of d is healthy, panic
// spreads over all of d.Eligible, local zone first (a = 1).
//
// Within a group, the pick is a power of two choices: two candidates drawn
// at random in proportion to their weights (possibly the same), and the one
// with fewer outstanding requests (Begin without End) wins; ties go to the
// first. Groups are precomputed as alias tables (Vose's method), so a draw
// is O(1) whatever the group's size, and a pick allocates nothing but the
// groups themselves, at a deployment's first pick and after a health
// change (a table's deployments cost no groups until they get traffic).
//
// PickOther, for a retry, draws the same way among the group instances
// that are not in tried and are in a zone none of them is in; failing
// that, among the ones not in tried.
package zones
