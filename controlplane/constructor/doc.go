// Package constructor carries plans out ("switchyard constructor",
// docs/constructor.md): one leader at a time, elected in ZooKeeper, turns
// each plan revision into a new generation of instances, placed by
// controlplane/placement and run by the allocators, and swaps it into the
// routing table grow-and-shrink: place, wait until every new instance
// runs, add it at weight 0, cut over in one serving write, wait for the
// proxies, drain, remove the old generation from the table, release its
// assignments. A failure before the cutover removes what the change
// added and leaves traffic as it was.
//
// The state of each change is its plan's status in ZooKeeper, written
// after every step, so a standby that becomes leader resumes where the
// last leader stopped; every step is idempotent.
package constructor
