// Package accesslog writes one JSON line per proxied request without ever
// blocking the request: lines go through a bounded buffer to a writer
// goroutine, and lines that do not fit are dropped and counted.
package accesslog
