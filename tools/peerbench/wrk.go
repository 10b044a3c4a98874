package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what peerbench reads of wrk's report.
type wrkResult struct {
	requests     int64   // "N requests in ..."
	rps          float64 // "Requests/sec:"
	socketErrors int64   // connect + read + write + timeout
	non2xx       int64   // "Non-2xx or 3xx responses:" (status >= 400)
}

var (
	wrkRequestsRe = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkRPSRe      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkSocketRe   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xxRe   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk parses wrk's text report. The request count and the rate are
// required; the error lines appear only when there were errors.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRequestsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no request count: %q", firstLines(out, 3))
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	m = wrkRPSRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no Requests/sec: %q", firstLines(out, 3))
	}
	var err error
	if r.rps, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("wrk Requests/sec %q: %w", m[1], err)
	}
	if m = wrkSocketRe.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.socketErrors += n
		}
	}
	if m = wrkNon2xxRe.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}

// runWrk runs one closed-loop wrk run: one thread, conns connections,
// whole seconds. With a Lua script each request picks its own route key;
// else every request carries header.
func (b *bench) runWrk(ctx context.Context, url string, conns int, d time.Duration, sc *scenario) (wrkResult, error) {
	secs := int((d + time.Second - 1) / time.Second)
	argv := []string{b.tools.wrk, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s", "--timeout", "10s"}
	if sc.tls() {
		// wrk takes the run's TLS parameters from OpenSSL's configuration.
		argv = append([]string{"env", "OPENSSL_CONF=" + b.opensslConf}, argv...)
	}
	if sc.luaScript != "" {
		argv = append(argv, "-s", sc.luaScript)
	} else {
		argv = append(argv, "-H", keyHeader+": "+sc.ids[0])
	}
	argv = append(argv, url)
	out, err := b.procs.runCmd(ctx, argv...)
	if err != nil {
		return wrkResult{}, err
	}
	return parseWrk(string(out))
}

// writeWrkScript writes a wrk Lua script that sends each request with a
// route key picked at random from ids.
func writeWrkScript(path string, ids []string) error {
	var b strings.Builder
	b.WriteString("-- Written by peerbench: each request carries a random " + keyHeader + " of the scenario.\n")
	b.WriteString("local ids = {\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  %q,\n", id)
	}
	b.WriteString("}\n")
	b.WriteString("local n = #ids\n")
	b.WriteString("math.randomseed(os.time())\n")
	b.WriteString("function request()\n")
	b.WriteString("  wrk.headers[\"" + keyHeader + "\"] = ids[math.random(n)]\n")
	b.WriteString("  return wrk.format()\nend\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
