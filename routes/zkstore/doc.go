// Package zkstore keeps the routing table in ZooKeeper, in the layout of
// docs/zookeeper.md: Store writes it (one multi-op transaction per
// deployment, guarded by versions) and reads it whole, and Watcher keeps
// an in-memory copy current with one-shot watches and publishes immutable
// snapshots of it, keeping the last good data through invalid znodes,
// disconnects and session expiry.
package zkstore
