//go:build race

package proxy

// raceEnabled: the race detector slows byte copying down many times, so
// tests that move a lot of data move less.
const raceEnabled = true
