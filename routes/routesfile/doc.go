// Package routesfile is the routes file: Parse reads one into a
// routes.Table, with errors that name the file and the line, and Source
// watches one and hands each good table to a routes.Sink. docs/routes-file.md
// describes the format.
package routesfile
