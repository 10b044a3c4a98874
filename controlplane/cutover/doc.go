// Package cutover decides the changes of a deployment's serving map and
// sees them through: which map a cutover, a weight split or a rollback
// writes, whether the proxies have applied a write, and when a watched
// cutover must be rolled back because the new generation fails.
//
// It has no command line in it. yardctl calls it and prints what it
// reports; the plan executor calls the same code.
//
// # In and out
//
// Decisions on a Target (the deployment as read, its previous serving map,
// the zones) are pure: Cutover, Weights and Rollback return the serving
// map to write, or an *Error saying why not. A Runner does what takes
// time: it reads the route servers through an Observer (their /status
// documents, wire.Status: the proxies' applied versions and per-generation
// reports), writes through a Store (*zkstore.Store), and says what it does
// through Events; its results (WaitResult, WatchResult) are what a caller
// shows. Nothing here writes to a terminal.
//
// # Time
//
// A Runner reads the time from its Clock. Tests inject one that moves only
// when the Runner waits, so a five-minute watch runs in milliseconds.
package cutover
