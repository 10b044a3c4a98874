// Package routeserver is the fan-out between the store and the proxies: it
// takes the tables a store watcher publishes and serves them to proxies as
// a long-poll stream of versioned full tables and deltas.
//
// # Protocol
//
// The paths, query parameters, headers and the /status document are
// defined once, in wire's contract (wire.PathRoutes, wire.Status, ...):
//
//	GET /v1/routes?version=V&hash=H&stale=S&wait=30s
//	X-Switchyard-Proxy: <proxy id>      (optional, for status)
//	X-Switchyard-Zone: <zone>           (optional)
//
// When the server's table differs from (V, H) it answers at once with 200
// and a wire.Message: a delta when it still holds (V, H) in its history, a
// full table otherwise. When they are equal it holds the request until the
// table or its staleness changes or until wait passes (then 304); S, the
// staleness the proxy last heard (optional), makes it answer 304 at once
// when the server's differs, so a change between two polls is not held
// back. Every answer
// carries X-Switchyard-Version and X-Switchyard-Stale (true when the server
// lost the store and serves its last table). Before its first table the
// server answers 503.
//
// Encoded messages are computed once per (base, version) and shared by all
// proxies asking for them: concurrent requests for the same message wait
// for one encoding (singleflight), and results stay in a byte-bounded cache
// (ristretto); an entry the cache dropped or refused is recomputed, never
// missing.
package routeserver
