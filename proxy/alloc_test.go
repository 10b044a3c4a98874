//go:build !race

package proxy

import (
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/head"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

// The per-request route path — key extraction, table lookup, instance
// pick — must not allocate.
func TestRoutePathAllocs(t *testing.T) {
	deps := []*routes.DeploymentSpec{{
		ID: depA, Kind: "es", Aliases: []string{"prod-search"}, Serving: map[string]int{"blue": 90, "green": 10},
		Instances: []*routes.Instance{
			inst("a", "127.0.0.1:1", "z1", "blue"), inst("b", "127.0.0.1:2", "z2", "blue"),
			inst("c", "127.0.0.1:3", "z1", "green"),
		},
	}}
	tbl, err := routes.NewTable("example.test", nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	suffix := []byte(".example.test")
	var picker zones.Picker = zones.Weighted{}
	cases := []struct{ name, header, host string }{
		{"header id", depA, ""},
		{"host alias", "", "Prod-Search.ES.example.test:9200"},
	}
	for _, c := range cases {
		header, host := []byte(c.header), []byte(c.host)
		allocs := testing.AllocsPerRun(1000, func() {
			var buf [maxKeyLen]byte
			key := routeKey(buf[:], header, host, suffix)
			d := tbl.Lookup(key)
			if d == nil || picker.Pick(d) == nil {
				t.Fatal("no route")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request; want 0", c.name, allocs)
		}
	}
}

// A whole proxied request — parse, route, pick, forward, stream the
// response back, metrics — allocates nothing in steady state. (Averaged: a
// GC may empty a sync.Pool and cost an allocation now and then.) The access
// log is off here: AllocsPerRun runs on one P, where its writer goroutine
// starves and each queued line holds a buffer (bounded by the queue); the
// access log pins its own zero allocations in proxy/accesslog.
//
// Over TLS, crypto/tls itself allocates once per record it reads (the
// reader it hands bytes.Buffer.ReadFrom escapes, Go 1.26): a small
// request is one record read by the proxy and its response one read by
// the client, 2 in all, which is the bound; the proxy's path adds none.
// (A 256 KiB body is many records, read in batches that vary: not
// pinned over TLS.)
func TestProxiedRequestAllocs(t *testing.T) {
	for _, c := range []struct {
		tls  bool
		size int
		most float64
	}{
		{false, 2, 0}, {false, 4 << 10, 0}, {false, 256 << 10, 0},
		{true, 2, 2}, {true, 4 << 10, 2},
	} {
		do, stop := inMemoryProxyOver(t, accesslog.Config{Off: true}, c.size, c.tls)
		for i := 0; i < 100; i++ {
			do()
		}
		if allocs := testing.AllocsPerRun(2000, do); allocs >= c.most+1 {
			t.Errorf("TLS %v, body of %d bytes: %.2f allocations per proxied request; want %v", c.tls, c.size, allocs, c.most)
		}
		stop()
	}
}

// The traffic filter's client address, behind a trusted proxy, is found
// without allocating.
func TestClientOfAllocs(t *testing.T) {
	trust := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.1.1.1")
	var h head.Request
	h.Set("X-Forwarded-For", "198.51.100.2, 203.0.113.1, 10.2.2.2")
	sc := reqScan{}
	sc.n[cntForwardedFor] = 1
	want := netip.MustParseAddr("203.0.113.1")
	buf := make([]byte, 0, 256)
	var ipbuf [64]byte
	if n := testing.AllocsPerRun(1000, func() {
		if c := clientOf(&h, &sc, peer, trust, &buf, ipbuf[:]); c.addr != want {
			t.Fatal("wrong address")
		}
	}); n != 0 {
		t.Errorf("clientOf: %v allocations per run; want 0", n)
	}
}
