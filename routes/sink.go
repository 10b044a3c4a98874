package routes

// Sink receives tables from a source (a routes file, route servers).
type Sink interface {
	// Apply takes a new good table, with Version, Source and LoadedAt set.
	Apply(t *Table)
	// Reject reports a load that was refused; the sink keeps its last good
	// table.
	Reject(source string, err error)
}
