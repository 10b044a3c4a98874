package yardload

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/loadtest"
)

// writeJSON writes r as one indented JSON document.
func writeJSON(w io.Writer, r *loadtest.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable writes r for people.
func writeTable(w io.Writer, r *loadtest.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	conns := fmt.Sprintf("%d connections", r.Connections)
	switch r.Protocol {
	case loadtest.HTTP2:
		conns = fmt.Sprintf("HTTP/2, %d connections × %d streams", r.Connections, r.Streams)
	case loadtest.HTTP3:
		conns = fmt.Sprintf("HTTP/3, %d connections × %d streams", r.Connections, r.Streams)
	}
	mode := "closed loop, " + conns
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %g req/s, %s", r.TargetRate, conns)
	}
	fmt.Fprintf(tw, "target\t%s\n", r.URL)
	fmt.Fprintf(tw, "load\t%s, %s\n", mode, round(r.Duration))
	fmt.Fprintf(tw, "requests\t%d sent, %d completed, %d failed, %.1f req/s\n", r.Sent, r.Completed, r.Failed(), r.RPS)
	fmt.Fprintf(tw, "status\t%s\n", counts(r.Status, func(c int) string { return fmt.Sprint(c) }))
	fmt.Fprintf(tw, "errors\t%s\n", counts(r.Errors, func(k string) string { return k }))
	l := r.Latency
	fmt.Fprintf(tw, "latency\tmean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		round(l.Mean), round(l.P50), round(l.P90), round(l.P99), round(l.P999), round(l.Max))
	if r.Mode == "open" {
		fmt.Fprintf(tw, "late\t%d (max lateness %s), %d expired, %d unsent\n", r.Late, round(r.MaxLateness), r.Expired, r.Unsent)
	}
	if r.Canceled > 0 || r.Retries > 0 {
		fmt.Fprintf(tw, "other\t%d canceled by stop, %d retried on a closed keep-alive connection\n", r.Canceled, r.Retries)
	}
	fmt.Fprintf(tw, "bytes\t%s sent, %s received\n", byteSize(r.BytesSent), byteSize(r.BytesReceived))
	return tw.Flush()
}

// counts formats a count map as "k: n  k: n", sorted by key; "none" when
// empty.
func counts[K int | string](m map[K]int64, name func(K) string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s: %d", name(k), m[k])
	}
	return b.String()
}

// round shortens d to three or four significant digits for display.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress draws one status line on w every second, overwriting itself,
// until the run ends. The returned func waits for the line to be cleared.
func progress(l *loadtest.Load, w io.Writer) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-l.Done():
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
			}
			s := l.Snapshot()
			fmt.Fprintf(w, "\r\x1b[K%5s  %d sent  %d done  %d req/s  %d failed  p99 %s",
				s.Duration.Round(time.Second), s.Sent, s.Completed, s.Completed-last, s.Failed(), round(s.Latency.P99))
			last = s.Completed
		}
	}()
	return func() { <-done }
}
