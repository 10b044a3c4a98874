package accesslog

import "time"

// Entry is one request's record. Byte-slice fields are only read during
// Logger.Log and may be reused by the caller afterwards.
type Entry struct {
	Time      time.Time // when the request arrived
	RequestID []byte
	ClientIP  []byte
	Method    []byte
	Host      []byte
	Path      []byte // request URI as received

	HandlingCluster   string // deployment ID, empty when unknown
	HandlingInstance  string // instance ID, empty when not proxied
	AvailabilityZones string // zone of the instance, empty when not proxied

	StatusCode   int
	StatusReason string // why the proxy answered itself or failed: "unknown_resource", "upstream_timeout", ...; empty for a proxied response

	ResponseTime        time.Duration // arrival to last byte written
	BackendResponseTime time.Duration // send to instance until its response headers; < 0 when no instance answered

	BytesIn  int64 // request body bytes read from the client
	BytesOut int64 // response body bytes written to the client

	Protocol   string // "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/3"; omitted when empty
	TLSVersion string // "TLSv1.3", "TLSv1.2"; empty on a plain connection
	TLSResumed bool   // the TLS session was resumed (a ticket), not new
}
