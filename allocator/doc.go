// Package allocator is the host agent of the control plane ("switchyard
// allocator", docs/allocator.md): it advertises the host's capacity in
// ZooKeeper, runs the instances assigned to it as processes, each in a
// cgroup of its own (memory limit of its size, CPU weight in proportion),
// checks their health, restarts those that end or fail with exponential
// backoff, leaves a crash-looping one failed, stops those no longer
// assigned, and reports each one's state.
//
// It fails static: losing ZooKeeper stops no instance, and an allocator
// started again adopts the instances still running (their pids and start
// times are kept in the instances directory) instead of restarting them.
package allocator
