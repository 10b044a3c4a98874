package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var (
	h2loadFinishedRe = regexp.MustCompile(`(?m)^finished in [^,]+, ([0-9.]+) req/s`)
	h2loadRequestsRe = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatusRe   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load parses h2load's report into a wrkResult: the requests that
// succeeded, the rate, failures as socket errors and 4xx/5xx as non-2xx.
func parseH2load(out string) (wrkResult, error) {
	var r wrkResult
	m := h2loadFinishedRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load output has no req/s: %q", firstLines(out, 3))
	}
	var err error
	if r.rps, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("h2load req/s %q: %w", m[1], err)
	}
	m = h2loadRequestsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load output has no request counts: %q", firstLines(out, 3))
	}
	r.requests, _ = strconv.ParseInt(m[4], 10, 64)
	failed, _ := strconv.ParseInt(m[5], 10, 64)
	r.socketErrors = failed
	if m = h2loadStatusRe.FindStringSubmatch(out); m != nil {
		c4, _ := strconv.ParseInt(m[3], 10, 64)
		c5, _ := strconv.ParseInt(m[4], 10, 64)
		r.non2xx = c4 + c5
	}
	return r, nil
}

// runH2load runs one closed-loop HTTP/2 run of h2load: one thread, conns
// connections with streams requests in flight on each, whole seconds,
// with the run's TLS parameters.
func (b *bench) runH2load(ctx context.Context, url string, conns, streams int, d time.Duration, sc *scenario) (wrkResult, error) {
	secs := int((d + time.Second - 1) / time.Second)
	argv := []string{"env", "OPENSSL_CONF=" + b.opensslConf, b.tools.h2load, "-t1",
		"-c" + strconv.Itoa(conns), "-m" + strconv.Itoa(streams), "-D" + strconv.Itoa(secs),
		"-H", keyHeader + ": " + sc.ids[0], url}
	out, err := b.procs.runCmd(ctx, argv...)
	if err != nil {
		return wrkResult{}, err
	}
	return parseH2load(string(out))
}
