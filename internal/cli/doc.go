// Package cli is the switchyard command line: subcommands, flags, config
// files and exit codes, and the one place where each server role is wired
// together from its parts. cmd/switchyard calls Main and nothing else.
//
// # Roles
//
// Each server role that a subcommand runs (proxy, route-server, demo) is
// written the same way, and the control-plane roles (allocator,
// constructor) are to follow it:
//
//   - an options struct, XOptions, whose fields are the role's flags and
//     config file keys, each zero value documented, plus the Logger (and
//     any output) the command gives it;
//   - a table of options, xFlags, each a flag --name and a config key name
//     with the function that parses it into the struct (flags.go);
//   - parseXArgs, which fills the struct from a config file (--config) and
//     then the flags, and checks what no single option can (one of two
//     options required, two that exclude each other): bad input is a
//     usage error naming the flag or file:line;
//   - (*XOptions).Run(ctx), which runs the role until ctx ends and returns
//     nil, or returns the first failure. Where the role runs several
//     things at once (a server, the source of its data, a watcher) they
//     run in one errgroup: the first to fail cancels the others, and Run
//     returns its error once all have stopped. What must outlive that
//     cancellation (handlers of SIGHUP and SIGUSR1, which would otherwise
//     end the process while it drains) is set up before the group and
//     removed after it.
//
// The subcommand's run function parses, sets the Logger from --log-level,
// and calls Run with a context that SIGINT or SIGTERM ends.
package cli
