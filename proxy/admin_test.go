package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/zones"
)

// manyDeployments is a table of n deployments with IDs %016x from 1, two
// instances each, in zone-a and zone-b.
func manyDeployments(t *testing.T, n int) *routes.Table {
	t.Helper()
	specs := make([]*routes.DeploymentSpec, n)
	for i := range specs {
		specs[i] = &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i+1), Kind: "es", Aliases: []string{fmt.Sprintf("d%d", i+1)},
			Serving: map[string]int{"blue": 100}, Instances: []*routes.Instance{
				inst("i-1", fmt.Sprintf("127.0.0.1:%d", 20000+i%1000), "zone-a", "blue"),
				inst("i-2", fmt.Sprintf("127.0.0.2:%d", 20000+i%1000), "zone-b", "blue")}}
	}
	return mustTable(t, specs...)
}

// statusDoc is what the tests read of /status.
type statusDoc struct {
	Table struct {
		Version     uint64 `json:"version"`
		Deployments int    `json:"deployments"`
	} `json:"table"`
	Zones       map[string]string `json:"zones"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
	Next     string `json:"next"`
	Balancer struct {
		Zones     []zones.ZoneStatus     `json:"zones"`
		Instances []zones.InstanceStatus `json:"instances"`
	} `json:"balancer"`
}

func getStatus(t *testing.T, p *testProxy, query string) (int, statusDoc, string) {
	t.Helper()
	code, body, _ := get(t, "http://"+p.AdminAddr().String()+"/status"+query)
	var st statusDoc
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/status%s: %v: %.300s", query, err, body)
		}
	}
	return code, st, body
}

func ids(st statusDoc) string {
	var out []string
	for _, d := range st.Deployments {
		out = append(out, strings.TrimLeft(d.ID, "0"))
	}
	return strings.Join(out, ",")
}

// /status gives the summary and a page of deployments; after= and limit=
// page through the table, deployment= picks one by ID or alias.
func TestStatusPagesAndFilters(t *testing.T) {
	b := zones.NewBalancer(zones.Config{})
	p := startProxy(t, Config{Picker: b, Reporter: b}, manyDeployments(t, 7))
	tests := []struct {
		query, ids, next string
		instances        int
	}{
		{"", "1,2,3,4,5,6,7", "", 14},
		{"?limit=3", "1,2,3", "0000000000000003", 6},
		{"?after=0000000000000003&limit=3", "4,5,6", "0000000000000006", 6},
		{"?after=0000000000000006&limit=3", "7", "", 2},
		{"?after=0000000000000007", "", "", 0},
		{"?after=00000000000000035", "4,5,6,7", "", 8}, // between two IDs
		{"?deployment=0000000000000005", "5", "", 2},
		{"?deployment=D5.ES", "5", "", 2},
	}
	for _, tt := range tests {
		code, st, body := getStatus(t, p, tt.query)
		if code != 200 {
			t.Errorf("/status%s: %d %s", tt.query, code, body)
			continue
		}
		if got := ids(st); got != tt.ids || st.Next != tt.next {
			t.Errorf("/status%s: deployments %q next %q; want %q next %q", tt.query, got, st.Next, tt.ids, tt.next)
		}
		if len(st.Balancer.Instances) != tt.instances {
			t.Errorf("/status%s: %d instances; want %d", tt.query, len(st.Balancer.Instances), tt.instances)
		}
		// The summary is the whole table's, whatever the page.
		if st.Table.Deployments != 7 || len(st.Balancer.Zones) != 2 || st.Balancer.Zones[0].Eligible != 7 || len(st.Zones) != 2 {
			t.Errorf("/status%s: summary %+v zones %v %+v; want 7 deployments, 2 zones of 7 eligible", tt.query, st.Table, st.Zones, st.Balancer.Zones)
		}
	}
	for _, c := range []struct {
		query string
		code  int
		msg   string
	}{
		{"?deployment=ffff", 404, "proxy: unknown deployment: ffff"},
		{"?limit=0", 400, "limit"},
		{"?limit=x", 400, "limit"},
		{"?deployment=0000000000000005&limit=1", 400, "deployment"},
	} {
		if code, _, body := getStatus(t, p, c.query); code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("/status%s: %d %s; want %d naming %q", c.query, code, body, c.code, c.msg)
		}
	}
}

// /status costs the page, not the table: the same document size and the
// same allocations at 200 and at 20 000 deployments. (At 100 000
// deployments it was 104 MB, built in 3.3 s.)
func TestStatusCostIsThePage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table of 20 000 deployments")
	}
	size := func(n int) (int, float64) {
		b := zones.NewBalancer(zones.Config{})
		p := startProxy(t, Config{Picker: b, Reporter: b}, manyDeployments(t, n))
		_, _, body := getStatus(t, p, "")
		allocs := testing.AllocsPerRun(20, func() { _, _ = p.StatusOf(StatusQuery{After: "0000000000000064"}) })
		return len(body), allocs
	}
	small, smallAllocs := size(200)
	large, largeAllocs := size(20000)
	if large > small+small/10 || large > 64<<10 {
		t.Errorf("/status: %d bytes at 20 000 deployments, %d at 200; want the same, under 64 KiB", large, small)
	}
	if largeAllocs > smallAllocs+10 {
		t.Errorf("StatusOf: %.0f allocations at 20 000 deployments, %.0f at 200; want the same", largeAllocs, smallAllocs)
	}
}
