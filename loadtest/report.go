package loadtest

import (
	"sync"
	"sync/atomic"
	"time"

	// hdrhistogram-go is the reference HDR Histogram implementation for Go
	// (the HdrHistogram project's own port): fixed memory, constant-time
	// recording, percentiles within 0.1 %.
	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs resolution up to 60 s, 3 significant digits.
const (
	histMaxMicros = int64(60 * time.Second / time.Microsecond)
	histDigits    = 3
)

// Report is what a run saw. Durations are nanoseconds in JSON, as their key
// names say. Maps hold only non-zero counts and are never nil.
type Report struct {
	URL         string `json:"url"`
	Mode        string `json:"mode"` // "closed" or "open"
	Connections int    `json:"connections"`
	// Protocol is Config.Protocol: "" (HTTP/1.1), "h2" or "h3".
	Protocol string `json:"protocol,omitempty"`
	// Streams is the requests in flight per connection with h2 and h3.
	Streams    int     `json:"streams,omitempty"`
	TargetRate float64 `json:"target_rate,omitempty"` // Config.Rate

	// Duration is the time from the start to the end of the run, or to
	// now in a Snapshot.
	Duration time.Duration `json:"duration_ns"`
	// Sent counts requests started: given to a connection, whether or not
	// it could connect.
	Sent int64 `json:"sent"`
	// Completed counts requests that got a response, of any status.
	Completed int64 `json:"completed"`
	// Status counts responses by status code.
	Status map[int]int64 `json:"status"`
	// Errors counts requests without a response by kind (KindRefused,
	// KindTimeout, KindReset, KindOther), Expired ones included.
	Errors map[string]int64 `json:"errors"`
	// RPS is Completed per second of Duration.
	RPS float64 `json:"rps"`
	// Latency covers every request that finished, with a response or an
	// error, Expired ones at Config.Timeout; see Result.Latency.
	Latency Latency `json:"latency"`

	// Late counts open-loop requests that fell due while every connection
	// was busy and waited more than one interval (1/Rate, at least 1 ms)
	// for one; Expired and Unsent ones included.
	Late int64 `json:"late"`
	// MaxLateness is the longest wait of a request for a connection.
	MaxLateness time.Duration `json:"max_lateness_ns"`
	// Expired counts open-loop requests never sent because they waited for
	// a connection longer than Config.Timeout; they are in
	// Errors[KindTimeout].
	Expired int64 `json:"expired"`
	// Unsent counts open-loop requests that were due before the run ended
	// but still waited for a connection when it did. Set only in the final
	// report.
	Unsent int64 `json:"unsent"`
	// Canceled counts requests in flight when Stop or the context ended
	// the run. They are in Sent and nowhere else.
	Canceled int64 `json:"canceled"`
	// Retries counts requests sent a second time because a reused
	// keep-alive connection was closed before any response byte, as
	// browsers and HTTP clients do for idempotent methods.
	Retries int64 `json:"retries"`

	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
}

// Latency summarizes latencies, to microsecond resolution. Max is exact;
// percentiles come from the histogram, within 0.1 %.
type Latency struct {
	Count int64         `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p99_9_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Failed counts requests that failed: errors of every kind plus 5xx
// responses.
func (r *Report) Failed() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	for code, c := range r.Status {
		if code >= 500 && code <= 599 {
			n += c
		}
	}
	return n
}

// shard holds the counts of some connections. Connections share a few
// shards rather than each holding a histogram (about 140 KiB apiece).
type shard struct {
	sent atomic.Int64 // counted before the request, outside mu

	mu          sync.Mutex
	status      [600]int64
	statusOther map[int]int64 // codes outside 0..599
	errors      [len(kinds)]int64
	completed   int64
	canceled    int64
	retries     int64
	late        int64
	expired     int64
	maxLateness time.Duration
	maxLatency  time.Duration
	bytesSent   int64
	bytesRecv   int64
	hist        *hdrhistogram.Histogram
}

func newShard() *shard {
	return &shard{hist: hdrhistogram.New(1, histMaxMicros, histDigits)}
}

// outcome is one finished request, recorded under the shard's lock.
type outcome struct {
	status    int
	kind      int // index in kinds, -1 with a response
	canceled  bool
	latency   time.Duration
	lateness  time.Duration
	late      bool
	retried   bool
	bytesSent int64
	bytesRecv int64
}

func (s *shard) record(o *outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytesSent += o.bytesSent
	s.bytesRecv += o.bytesRecv
	if o.retried {
		s.retries++
	}
	if o.late {
		s.late++
	}
	s.maxLateness = max(s.maxLateness, o.lateness)
	if o.canceled {
		s.canceled++
		return
	}
	switch {
	case o.kind >= 0:
		s.errors[o.kind]++
	case o.status >= 0 && o.status < len(s.status):
		s.completed++
		s.status[o.status]++
	default:
		s.completed++
		if s.statusOther == nil {
			s.statusOther = make(map[int]int64)
		}
		s.statusOther[o.status]++
	}
	s.recordLatency(o.latency, 1)
}

func (s *shard) recordLatency(d time.Duration, n int64) {
	s.maxLatency = max(s.maxLatency, d)
	us := min(max(int64(d/time.Microsecond), 0), histMaxMicros)
	s.hist.RecordValues(us, n) // in range by construction
}

// recordExpired counts n requests given up unsent, the oldest of which
// waited lateness.
func (s *shard) recordExpired(n int64, lateness, timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired += n
	s.late += n
	s.errors[kindTimeout] += n
	s.maxLateness = max(s.maxLateness, lateness)
	s.recordLatency(timeout, n)
}

// sum adds the shards' counts into a new Report.
func sum(shards []*shard) *Report {
	r := &Report{Status: map[int]int64{}, Errors: map[string]int64{}}
	h := hdrhistogram.New(1, histMaxMicros, histDigits)
	for _, s := range shards {
		r.Sent += s.sent.Load()
		s.mu.Lock()
		for code, n := range s.status {
			if n > 0 {
				r.Status[code] += n
			}
		}
		for code, n := range s.statusOther {
			r.Status[code] += n
		}
		for i, n := range s.errors {
			if n > 0 {
				r.Errors[kinds[i]] += n
			}
		}
		r.Completed += s.completed
		r.Canceled += s.canceled
		r.Retries += s.retries
		r.Late += s.late
		r.Expired += s.expired
		r.MaxLateness = max(r.MaxLateness, s.maxLateness)
		r.Latency.Max = max(r.Latency.Max, s.maxLatency)
		r.BytesSent += s.bytesSent
		r.BytesReceived += s.bytesRecv
		h.Merge(s.hist)
		s.mu.Unlock()
	}
	r.Latency.Count = h.TotalCount()
	if r.Latency.Count > 0 {
		us := func(v int64) time.Duration { return min(time.Duration(v)*time.Microsecond, r.Latency.Max) }
		r.Latency.Mean = time.Duration(h.Mean() * float64(time.Microsecond))
		r.Latency.P50 = us(h.ValueAtQuantile(50))
		r.Latency.P90 = us(h.ValueAtQuantile(90))
		r.Latency.P99 = us(h.ValueAtQuantile(99))
		r.Latency.P999 = us(h.ValueAtQuantile(99.9))
	}
	return r
}
