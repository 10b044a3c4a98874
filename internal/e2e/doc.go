// Package e2e tests the switchyard binary as operators run it: built from
// source, started as a process, fed real files and real signals, measured
// from /proc.
package e2e
