package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	rtmetrics "runtime/metrics"
	"testing"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/zones"
)

// BenchmarkApplyDelta is what a proxy spends on one route server delta
// that changes one deployment of a large table: decoding and applying the
// message to its state (wire.Apply, with the sum hash), deriving the table
// (State.Table) and serving it (Server.Apply: the balancer, the
// per-generation counters, the instances out of service). Building the
// route server's snapshots is outside the timer.
func BenchmarkApplyDelta(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("deployments=%d", n), func(b *testing.B) {
			deps := make(map[string]*routes.DeploymentSpec, n)
			spec := func(i, gen int) *routes.DeploymentSpec {
				return &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Aliases: []string{fmt.Sprint("a", i)},
					Serving: map[string]int{"blue": 1}, Instances: []*routes.Instance{
						inst("i-1", fmt.Sprintf("10.0.%d.%d:%d", i/250%250, i%250, 9200+gen%100), "zone-a", "blue"),
						inst("i-2", fmt.Sprintf("10.1.%d.%d:%d", i/250%250, i%250, 9200+gen%100), "zone-b", "blue"),
						inst("i-3", fmt.Sprintf("10.2.%d.%d:%d", i/250%250, i%250, 9200+gen%100), "zone-c", "blue")}}
			}
			for i := range n {
				d := spec(i, 0)
				deps[d.ID] = d
			}
			zs := map[string]routes.ZoneState{"zone-a": routes.ZoneUp}
			snap := wire.NewHashedSnapshot(wire.HashSum, nil, 1, "example.test", zs, deps)
			st, err := wire.Apply(nil, decodeMsg(b, snap.Full(false)))
			if err != nil {
				b.Fatal(err)
			}
			tb, err := st.Table()
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Config{Picker: zones.NewBalancer(zones.Config{LocalZone: "zone-a"}), Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			s.Apply(tb)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				d := spec(i%n, i+1)
				next := wire.NextSnapshot(wire.HashSum, snap, snap.Version+1, "example.test", zs, map[string]*routes.DeploymentSpec{d.ID: d})
				msg, ok := next.DeltaOver(snap.Version, snap.Hash, []*wire.Change{next.Change()}, false)
				if !ok {
					b.Fatal("no delta")
				}
				snap = next
				b.StartTimer()
				if st, err = wire.Apply(st, decodeMsg(b, msg)); err != nil {
					b.Fatal(err)
				}
				if tb, err = st.Table(); err != nil {
					b.Fatal(err)
				}
				s.Apply(tb)
			}
		})
	}
}

// BenchmarkApplyFull is what a proxy spends on a whole table of
// deployments × 3 instances, as at a restart from its disk copy: decoding
// the message (wire.DecodeMessage, as wire.ReadFile does), applying it
// (wire.Apply, with the sum hash), building the table and serving it.
func BenchmarkApplyFull(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("deployments=%d", n), func(b *testing.B) {
			full := fullTable(n)
			b.SetBytes(int64(len(full)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			defer cpu.report(b)
			for range b.N {
				s, err := New(Config{Picker: zones.NewBalancer(zones.Config{LocalZone: "zone-a"}), Logger: discardLogger()})
				if err != nil {
					b.Fatal(err)
				}
				m, err := wire.DecodeMessage(full)
				if err != nil {
					b.Fatal(err)
				}
				st, err := wire.Apply(nil, m)
				if err != nil {
					b.Fatal(err)
				}
				tb, err := st.Table()
				if err != nil {
					b.Fatal(err)
				}
				s.Apply(tb)
			}
		})
	}
}

// fullTable is a route server's full message of a table of n
// deployments × 3 instances, hashed with the sum.
func fullTable(n int) []byte {
	deps := make(map[string]*routes.DeploymentSpec, n)
	for i := range n {
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Aliases: []string{fmt.Sprint("a", i)},
			Serving: map[string]int{"blue": 1}, Instances: []*routes.Instance{
				inst("i-1", fmt.Sprintf("10.0.%d.%d:9200", i/250%250, i%250), "zone-a", "blue"),
				inst("i-2", fmt.Sprintf("10.1.%d.%d:9200", i/250%250, i%250), "zone-b", "blue"),
				inst("i-3", fmt.Sprintf("10.2.%d.%d:9200", i/250%250, i%250), "zone-c", "blue")}}
		deps[d.ID] = d
	}
	return wire.NewHashedSnapshot(wire.HashSum, nil, 1, "example.test", nil, deps).Full(false)
}

func decodeMsg(tb testing.TB, b []byte) *wire.Message {
	var m wire.Message
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return &m
}

// held keeps what BenchmarkHeldTable loaded reachable after it returns,
// so that a heap profile written at the end (-memprofile) shows it.
var held []any

// BenchmarkHeldTable reports the live heap of a proxy holding a table of
// deployments × 3 instances (each deployment its own instances), as a
// proxy that follows route servers holds it: the state deltas apply to
// (wire.State) and the served table with the balancer's state for it.
// The message is read into a buffer of its own and decoded as a restart
// from the disk copy decodes it (wire.DecodeMessage); what the state
// keeps of that buffer is counted. live-MiB is the heap in use after a
// collection, less what was in use before the load; state-MiB, table-MiB
// and served-MiB split it into the state (the decoded deployments and
// their hashes), the table (routes.Table: deployments, index) and what
// serving it adds (the balancer, the proxy's own maps). A heap profile
// (-memprofile) shows where each is.
func BenchmarkHeldTable(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("deployments=%d", n), func(b *testing.B) {
			full := fullTable(n)
			for range b.N {
				held = nil
				before := liveHeap()
				s, err := New(Config{Picker: zones.NewBalancer(zones.Config{LocalZone: "zone-a"}), Logger: discardLogger()})
				if err != nil {
					b.Fatal(err)
				}
				m, err := wire.DecodeMessage(bytes.Clone(full))
				if err != nil {
					b.Fatal(err)
				}
				st, err := wire.Apply(nil, m)
				if err != nil {
					b.Fatal(err)
				}
				m = nil
				afterState := liveHeap()
				tb, err := st.Table()
				if err != nil {
					b.Fatal(err)
				}
				afterTable := liveHeap()
				s.Apply(tb)
				held = []any{s, st}
				after := liveHeap()
				mib := func(n int64) float64 { return float64(n) / (1 << 20) }
				b.ReportMetric(mib(after-before), "live-MiB")
				b.ReportMetric(mib(afterState-before), "state-MiB")
				b.ReportMetric(mib(afterTable-afterState), "table-MiB")
				b.ReportMetric(mib(after-afterTable), "served-MiB")
			}
		})
	}
}

// cpuMeter reports the CPU a benchmark's loop spent, as the runtime
// counts it (runtime/metrics): cpu-ms/op is the Go code's and the
// garbage collector's together on every CPU, gc-ms/op the collector's.
// Unlike ns/op they do not count the time other processes take the CPUs.
type cpuMeter struct{ user, gc float64 }

var cpuMetrics = []string{"/cpu/classes/user:cpu-seconds", "/cpu/classes/gc/total:cpu-seconds"}

func readCPU() cpuMeter {
	s := make([]rtmetrics.Sample, len(cpuMetrics))
	for i, name := range cpuMetrics {
		s[i].Name = name
	}
	rtmetrics.Read(s)
	return cpuMeter{user: s[0].Value.Float64(), gc: s[1].Value.Float64()}
}

func startCPU() cpuMeter { return readCPU() }

func (c cpuMeter) report(b *testing.B) {
	b.StopTimer()
	end := readCPU()
	user, gc := end.user-c.user, end.gc-c.gc
	b.ReportMetric((user+gc)*1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(gc*1000/float64(b.N), "gc-ms/op")
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
