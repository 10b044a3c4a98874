// Package upstream sends requests to instances over pooled keep-alive
// connections and streams the bodies both ways.
//
// It writes fasthttp request headers and reads fasthttp response headers
// directly on its own connections, so that each phase has its own timeout
// (connect, response header, per-read/write idle), bodies are never
// buffered whole, and a failure says whether any byte of the request was
// sent (which decides whether it may be retried).
package upstream
