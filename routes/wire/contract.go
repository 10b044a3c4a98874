package wire

import (
	"time"

	"github.com/switchyard/switchyard/routes"
)

// The route server's HTTP contract: the paths, query parameters and
// headers that the route server serves, the route client sends and yardctl
// reads, and the JSON of GET PathStatus. The bodies are Message (the route
// stream's answers), Report (what a proxy posts) and Status.
//
//	GET  PathRoutes?ParamVersion=V&ParamHash=H&ParamStale=S&ParamWait=30s
//	     HeaderProxy, HeaderZone (optional)
//	     200 Message | 304 | 503 before the first table;
//	     every answer carries HeaderVersion and HeaderStale
//	POST PathReport   body Report; 204
//	GET  PathStatus   Status
//	GET  PathHealth   200 once the server has a table, 502 before
//	GET  PathMetrics  Prometheus text
const (
	PathRoutes  = "/v1/routes"
	PathReport  = "/v1/report"
	PathStatus  = "/status"
	PathHealth  = "/_health"
	PathMetrics = "/metrics"
)

// Query parameters of PathRoutes. All are optional.
const (
	// ParamVersion and ParamHash name the table the proxy has (decimal
	// version, hex hash); without them it is sent the full table.
	ParamVersion = "version"
	ParamHash    = "hash"
	// ParamStale is the staleness the proxy last heard ("true" or
	// "false"): when the server's differs, a poll at the current table is
	// answered at once (304).
	ParamStale = "stale"
	// ParamWait is how long the server may hold the poll, a Go duration
	// ("30s"); the server caps it.
	ParamWait = "wait"
)

// Headers of PathRoutes.
const (
	// HeaderProxy and HeaderZone identify the polling proxy (requests;
	// optional, shown in Status).
	HeaderProxy = "X-Switchyard-Proxy"
	HeaderZone  = "X-Switchyard-Zone"
	// HeaderVersion is the version of the server's table (responses).
	HeaderVersion = "X-Switchyard-Version"
	// HeaderStale is "true" when the server has lost the store and serves
	// its last table (responses).
	HeaderStale = "X-Switchyard-Stale"
)

// Status is the JSON of GET PathStatus: the route server's table and the
// proxies it has heard from.
type Status struct {
	Name        string            `json:"name"`
	Version     uint64            `json:"version"`
	Hash        string            `json:"hash,omitempty"`
	Stale       bool              `json:"stale"`
	Deployments int               `json:"deployments"`
	Invalid     map[string]string `json:"invalid,omitempty"` // deployment ID -> why its znode was refused
	Proxies     []ProxyStatus     `json:"proxies"`
	// Reports are the proxies' latest per-generation counts (see Report),
	// for the deployments with more than one generation.
	Reports []ProxyReport `json:"reports,omitempty"`
}

// ProxyStatus is what a route server knows of one proxy.
type ProxyStatus struct {
	ID      string `json:"id"`
	Zone    string `json:"zone,omitempty"`
	Addr    string `json:"addr"`
	Version uint64 `json:"version"` // of the table the proxy last said it has
	// Current is true when the proxy has the server's current table.
	Current bool `json:"current"`
	// LagSeconds is how long the proxy has been behind: since the first
	// table newer than its own was published; 0 when current.
	LagSeconds float64   `json:"lag_seconds"`
	LastSeen   time.Time `json:"last_seen"`
}

// ProxyReport is one proxy's latest Report to a route server, and when it
// came.
type ProxyReport struct {
	Proxy       string                   `json:"proxy"`
	Zone        string                   `json:"zone,omitempty"`
	ReportedAt  time.Time                `json:"reported_at"`
	Generations []routes.GenerationCount `json:"generations"`
}
