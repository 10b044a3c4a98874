// Package placement decides where a deployment's instances go: a pure
// function over a read-only snapshot of the allocators, with no ZooKeeper
// and no I/O in it. The constructor reads the snapshot, calls Place and
// writes the assignments it returns; yardctl and the admin API can ask the
// same question without writing anything.
//
// # Pipeline
//
// Place runs small steps in order, as Nomad's scheduler chains its
// iterators:
//
//  1. validate: the request (deployment, zones, per_zone, memory_bytes)
//     and the snapshot (IDs, zones, sizes); the first problem is an *Error
//     wrapping ErrInvalid that names the field;
//  2. feasibility: an allocator can take an instance when it is live, not
//     in maintenance, not excluded, has Capacity-Used >= MemoryBytes free,
//     and holds no instance of the deployment;
//  3. zone spread: Zones distinct zones, each with at least PerZone
//     feasible allocators; preferred zones first (in the order given),
//     then the most free memory on feasible allocators, then the zone name.
//     Too few such zones is an *Error wrapping ErrNoRoom that says, zone
//     by zone, what is missing;
//  4. bin packing: within a zone, each instance goes to a distinct
//     feasible allocator chosen by the Strategy (best fit: the least free
//     memory left after placing it);
//  5. tie-break: equal scores go to the smaller allocator ID.
//
// # Determinism
//
// The result depends on the snapshot's content and the request only: the
// order of Snapshot.Allocators does not change it, and the Random
// strategy draws from a generator seeded by Options.Seed and the
// deployment ID over candidates sorted by ID. Place never changes the
// snapshot, and never places an instance where it would take Used above
// Capacity.
//
// docs/placement.md has the rules, the error messages and the benchmark.
package placement
