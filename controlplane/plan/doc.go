// Package plan is the plans' part of the ZooKeeper tree: each
// deployment's desired state (a Plan), the revision that counts its
// changes, and the status the constructor reports while it carries a
// revision out. yardctl and the admin API write plans and read statuses
// through this package; the constructor reads plans and writes statuses.
//
//	<root>/plans/<deployment id>         the Plan (without its deployment) and "revision"
//	<root>/plans/<deployment id>/status  Status (the constructor only)
//
// # Plans
//
// A plan is read from a YAML file (Parse, ParseFile) or from JSON
// (DecodeJSON), and validated whole before anything is written
// (Plan.Validate): the first problem is an *Error wrapping ErrInvalid,
// one line that names the field, and the file and line when there is
// one. The fields a plan shares with a deployment of the routing table
// (deployment, kind, display_name, aliases, allow) follow the routes
// model's own rules (routes.ValidateDeployment). Unknown keys are errors
// in both encodings: a plan is desired state, and a reader that does not
// know a key cannot do what it asks.
//
// # Revisions
//
// Store.Apply creates a plan at revision 1 and sets a changed one at the
// version it read, with the revision one more; a plan equal to the stored
// one (Plan.Equal) is not written at all, so applying the same file again
// does nothing. The constructor names a revision's generation from its
// number.
//
// # Concurrency
//
// Every write is guarded by the version of what was read: a writer that
// lost a race gets ErrConflict and nothing is written; it reads again and
// decides again. Delete removes a plan and its status in one transaction
// and refuses, unless forced, while the status says running.
//
// # Status
//
// Only the constructor writes a status (WriteStatus, at the version it
// read). Readers ignore keys they do not know in a status, which is a
// report. Store.Wait follows a status with watches until a revision is
// done, failed or rolled back.
//
// docs/plans.md has the file format, the layout and the yardctl commands.
package plan
