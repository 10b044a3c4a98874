//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package accesslog

import (
	"io"
	"runtime"
	"testing"
)

func TestLogZeroAllocs(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		tls  bool
	}{
		{"every request", Config{}, false},
		{"over TLS", Config{}, true},
		{"sampled", Config{SampleEvery: 4}, false},
		{"off", Config{Off: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewWriter(tt.cfg, io.Discard)
			defer l.Close()
			every := uint64(max(tt.cfg.SampleEvery, 1))
			e := baseEntry()
			e.Path = []byte("/idx/_search?q=\"quoted\"&\x01\xff日本")
			if tt.tls {
				e.TLSVersion, e.TLSResumed = "TLSv1.3", true
			}
			var calls uint64
			logOne := func() {
				l.Log(&e)
				calls++
				if tt.cfg.Off {
					return
				}
				// Let the writer catch up now and then, as it does in steady
				// state (a batch goes out at flushBytes or after flushAfter);
				// the writer's work is counted too.
				if calls%50 == 0 {
					for l.Written() < (calls+every-1)/every {
						runtime.Gosched()
					}
				}
			}
			for range 100 {
				logOne()
			}
			if got := testing.AllocsPerRun(1000, logOne); got != 0 {
				t.Errorf("Log allocates %v times per call; want 0", got)
			}
		})
	}
}
