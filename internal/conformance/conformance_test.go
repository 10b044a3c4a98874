package conformance

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// run is what one proxy made of a shape: what the client (and the next
// client) got, and what the instance behind the proxy received.
type run struct {
	ex, next *Exchange
	rec      *Record
	err      error
}

func (r *run) forwarded() bool { return r.err == nil && r.rec.Bytes() > 0 }

// summary renders r for the table.
func (r *run) summary() string {
	if r == nil {
		return "(not run)"
	}
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	s := r.ex.Summary()
	if r.forwarded() && !slices.ContainsFunc(r.ex.Responses, func(x Response) bool { return x.Proxied() }) {
		s += fmt.Sprintf(" (instance got %d bytes)", r.rec.Bytes())
	}
	if r.next != nil {
		s += "; next client: " + markersOf(r.next)
	}
	return s
}

// markersOf names the answers of an exchange by their markers.
func markersOf(ex *Exchange) string {
	if m := answerMarkers(ex.Final()); len(m) > 0 {
		return strings.Join(m, ", ")
	}
	return "no answer"
}

// observe sends sh through the proxy that start starts in front of a new
// instance.
func observe(sh *shape, start func(instAddr string) (*server, error)) *run {
	inst, err := Listen(Options{IgnoreGETBodies: sh.lax})
	if err != nil {
		return &run{err: err}
	}
	defer inst.Close()
	srv, err := start(inst.Addr())
	if err != nil {
		return &run{err: err}
	}
	r := &run{}
	r.ex, r.err = Send(srv.addr, []byte(sh.raw), sh.sendOptions())
	if r.err == nil && sh.next != "" {
		time.Sleep(20 * time.Millisecond) // the next client comes a moment later
		r.next, r.err = Send(srv.addr, []byte(sh.next), SendOptions{})
	}
	inst.Quiet(30*time.Millisecond, time.Second)
	r.rec = inst.Snapshot()
	if err := srv.stop(); err != nil && r.err == nil {
		r.err = err
	}
	return r
}

// sendOptions waits for as many answers as the table wants, and, where
// the proxy must close the connection, up to a second for it to close.
func (sh *shape) sendOptions() SendOptions {
	o := SendOptions{Want: max(1, len(sh.markers))}
	if sh.refuse != 0 || sh.closes {
		o.NextWait = time.Second
	}
	return o
}

// TestRequestShapes sends every shape to Switchyard and to HAProxy, each
// in front of its own recording instance, checks Switchyard against the
// table, and checks that Switchyard refuses whatever HAProxy refuses. It
// logs the table of answers. (Several seconds of wall time: each shape
// waits for answers that may not come.)
func TestRequestShapes(t *testing.T) {
	bin := haproxyBinary(t)
	sy := make([]*run, len(shapes))
	ha := make([]*run, len(shapes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range shapes {
		sh := &shapes[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sy[i] = observe(sh, startSwitchyard)
		})
		if bin != "" {
			dir := t.TempDir()
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				ha[i] = observe(sh, func(inst string) (*server, error) { return startHAProxy(bin, dir, inst) })
			})
		}
	}
	wg.Wait()

	names := map[string]bool{}
	for _, sh := range shapes {
		if names[sh.name] {
			t.Errorf("shape %q is in the table twice", sh.name)
		}
		names[sh.name] = true
	}
	for _, name := range knownFailing {
		if !names[name] {
			t.Errorf("knownFailing names %q, which is no shape of the table", name)
		}
	}
	var stillFailing []string
	for i := range shapes {
		sh := &shapes[i]
		own := sh.problems(sy[i])
		var vs []string
		if ha[i] != nil {
			vs = sh.parity(sy[i], ha[i])
		}
		isKnown := slices.Contains(knownFailing, sh.name)
		if isKnown && len(own)+len(vs) > 0 {
			stillFailing = append(stillFailing, sh.name)
		}
		t.Run(sh.name, func(t *testing.T) {
			report(t, isKnown, own)
			if len(own) > 0 {
				t.Logf("instance behind Switchyard got:\n%s", sy[i].transcript())
			}
			if isKnown && len(own)+len(vs) == 0 {
				t.Logf("passes now: remove %q from knownFailing", sh.name)
			}
			t.Run("HAProxy", func(t *testing.T) {
				if ha[i] == nil {
					t.Skip("no haproxy binary: the comparison with HAProxy is skipped (scripts/install-test-deps.sh installs it)")
				}
				report(t, isKnown, vs)
				t.Logf("HAProxy answered %s; its instance got:\n%s", ha[i].summary(), ha[i].transcript())
			})
		})
	}
	if len(stillFailing) > 0 {
		t.Logf("known failing shapes (%d): %s", len(stillFailing), strings.Join(stillFailing, "; "))
	}
	peer := "HAProxy"
	if bin != "" {
		peer = haproxyVersion(bin)
	}
	t.Logf("answers to each shape:\n%s", answerTable(peer, sy, ha))
}

// report fails t with each problem, or only logs them for a shape in
// knownFailing.
func report(t *testing.T, known bool, problems []string) {
	t.Helper()
	for _, p := range problems {
		if known {
			t.Logf("known failing (knownFailing): %s", p)
		} else {
			t.Error(p)
		}
	}
}

func (r *run) transcript() string {
	if r == nil || r.rec == nil {
		return "(nothing)"
	}
	return r.rec.Transcript()
}

// problems checks Switchyard's run of sh against the table.
func (sh *shape) problems(r *run) []string {
	if r.err != nil {
		return []string{r.err.Error()}
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	// Invariants of every shape.
	for _, f := range r.rec.Malformed() {
		add("instance could not parse what it got: %v", f)
	}
	if r.ex.End == EndGarbage {
		add("client got bytes that are not HTTP/1 responses: %v: %q", r.ex.Err, r.ex.Raw)
	}
	final := r.ex.Final()
	for _, resp := range final {
		if resp.Status >= 400 && !resp.Proxied() {
			if why := ownRefusalProblem(&resp); why != "" {
				add("proxy's %d: %s", resp.Status, why)
			}
		}
	}
	if sh.record {
		return p
	}
	for _, resp := range final {
		if !resp.Proxied() {
			continue
		}
		q := r.rec.Request(seqOf(&resp))
		if q == nil {
			add("answer with %s %q names no request the instance parsed", HeaderSeq, resp.Header.Get(HeaderSeq))
			continue
		}
		if m, _ := AnswerMarker(resp.Body); m == "smuggled" {
			continue // checked below, as an answer to the wrong request
		}
		p = append(p, forwardedProblems(q, &resp)...)
		if sh.check != nil {
			if why := sh.check(q); why != "" {
				p = append(p, why)
			}
		}
	}

	if sh.refuse != 0 {
		if len(final) != 1 || final[0].Proxied() || final[0].Status != sh.refuse {
			add("client got %s; want %d from the proxy", r.ex.Summary(), sh.refuse)
		}
		if n := r.rec.Bytes(); n > 0 {
			add("instance got %d bytes; want none", n)
		}
		if sh.refuse == 400 && r.ex.End != EndClosed {
			add("connection %s after the 400; want it closed", r.ex.End)
		}
		return p
	}
	want := sh.markers
	if want == nil {
		want = []string{"a"}
	}
	if got := answerMarkers(final); !slices.Equal(got, want) {
		add("client got %s, answers to %q; want answers to %q", r.ex.Summary(), got, want)
	}
	if n := len(r.rec.Requests); !sh.lax && n != len(want) {
		add("instance parsed %d requests; want %d", n, len(want))
	}
	if sh.closes && r.ex.End != EndClosed {
		add("connection %s after the answer; want it closed", r.ex.End)
	}
	if sh.next != "" {
		if got := answerMarkers(r.next.Final()); !slices.Equal(got, []string{"next"}) {
			add("next client got %s, answers to %q; want the answer to its own request [\"next\"]", r.next.Summary(), got)
		}
	}
	return p
}

// parity checks Switchyard's run of sh against HAProxy's: what HAProxy
// forwards nothing of, Switchyard refuses; what HAProxy forwards and the
// table refuses needs a reason.
func (sh *shape) parity(sy, ha *run) []string {
	if ha.err != nil {
		return []string{"haproxy: " + ha.err.Error()}
	}
	var p []string
	switch {
	case !ha.forwarded() && sy.forwarded():
		p = append(p, fmt.Sprintf("HAProxy forwards nothing of this shape (%s), but Switchyard forwards it (%s)", ha.summary(), sy.summary()))
	case !ha.forwarded() && !sh.record && sh.refuse == 0:
		p = append(p, fmt.Sprintf("HAProxy forwards nothing of this shape (%s), but the table forwards it", ha.summary()))
	case ha.forwarded() && sh.refuse != 0 && sh.stricter == "":
		p = append(p, fmt.Sprintf("HAProxy forwards this shape (%s), but the table refuses it without a reason (stricter)", ha.summary()))
	}
	if !ha.forwarded() && sy.err == nil {
		if f := sy.ex.Final(); len(f) == 0 || f[0].Proxied() || f[0].Status < 400 || f[0].Status > 499 {
			p = append(p, fmt.Sprintf("HAProxy refuses this shape (%s); Switchyard answers %s, want a 4xx of its own", ha.summary(), sy.summary()))
		}
	}
	return p
}

// forwardedProblems checks what the instance saw of a forwarded request
// q, answered to the client by resp: one Host, the forwarding headers the
// proxy sets (exactly once each), no hop-by-hop header, an origin-form
// target, and the proxy's headers on the answer.
func forwardedProblems(q *Request, resp *Response) []string {
	var p []string
	want := func(name string, v ...string) {
		if got := q.Values(name); !slices.Equal(got, v) {
			p = append(p, fmt.Sprintf("instance got %s %q; want %q", name, got, v))
		}
	}
	want("Host", testHost)
	want("X-Forwarded-For", "127.0.0.1")
	want("X-Forwarded-Host", testHost)
	want("X-Forwarded-Proto", "http")
	id := resp.Header.Get("X-Cloud-Request-Id")
	if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
		p = append(p, fmt.Sprintf("answer's X-Cloud-Request-Id %q is not 32 hex digits", id))
	}
	want("X-Cloud-Request-Id", id)
	for _, h := range []string{"Connection", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection"} {
		want(h)
	}
	if !strings.HasPrefix(q.Target, "/") {
		p = append(p, fmt.Sprintf("instance got target %q; want origin form (RFC 9112 3.2.1)", q.Target))
	}
	if got := resp.Header.Get("X-Found-Handling-Instance"); got != testInstance {
		p = append(p, fmt.Sprintf("answer's X-Found-Handling-Instance %q; want %q", got, testInstance))
	}
	if got := resp.Header.Get("X-Found-Handling-Cluster"); got != testDepID {
		p = append(p, fmt.Sprintf("answer's X-Found-Handling-Cluster %q; want %q", got, testDepID))
	}
	return p
}

// ownRefusalProblem says what is wrong with a refusal the proxy wrote
// itself: it must be a 4xx with a JSON body {"ok":false,...} and a
// request ID.
func ownRefusalProblem(resp *Response) string {
	var v struct {
		OK      *bool  `json:"ok"`
		Message string `json:"message"`
	}
	switch {
	case resp.Status > 499:
		return "the proxy answers with a 5xx where the request is at fault; want a 4xx"
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
		return fmt.Sprintf("Content-Type %q; want application/json", resp.Header.Get("Content-Type"))
	case json.Unmarshal(resp.Body, &v) != nil || v.OK == nil || *v.OK || v.Message == "":
		return fmt.Sprintf("body %q; want {\"ok\":false,\"message\":...}", resp.Body)
	case resp.Header.Get("X-Cloud-Request-Id") == "":
		return "no X-Cloud-Request-Id"
	}
	return ""
}

func seqOf(resp *Response) int {
	var n int
	fmt.Sscan(resp.Header.Get(HeaderSeq), &n)
	return n
}

// answerMarkers returns the markers of the answers, "<status> own" for an
// answer the proxy wrote.
func answerMarkers(final []Response) []string {
	out := []string{}
	for _, resp := range final {
		m, ok := AnswerMarker(resp.Body)
		if !resp.Proxied() || !ok {
			m = fmt.Sprintf("%d own", resp.Status)
		}
		out = append(out, m)
	}
	return out
}

// answerTable renders shape → HAProxy → Switchyard → want as Markdown.
func answerTable(peer string, sy, ha []*run) string {
	rows := [][]string{{"shape", peer, "Switchyard", "want"}}
	for i := range shapes {
		sh := &shapes[i]
		want := "forward"
		switch {
		case sh.record:
			want = "(recorded)"
		case sh.refuse != 0:
			want = fmt.Sprint(sh.refuse)
			if sh.stricter != "" && ha[i] != nil && ha[i].forwarded() {
				want += " (stricter)"
			}
		case sh.next != "":
			want = "forward; next client gets its own answer"
		}
		if slices.Contains(knownFailing, sh.name) {
			want += " — known failing"
		}
		rows = append(rows, []string{sh.name, ha[i].summary(), sy[i].summary(), want})
	}
	width := make([]int, 4)
	for _, r := range rows {
		for j, c := range r {
			width[j] = max(width[j], len(c))
		}
	}
	var b strings.Builder
	b.WriteString("fwd: the instance's answer; own: the proxy's own; closed: the proxy closed the connection;\n" +
		"(instance got N bytes): forwarded, but no answer of the instance reached the client\n\n")
	for k, r := range rows {
		for j, c := range r {
			fmt.Fprintf(&b, "| %-*s ", width[j], c)
		}
		b.WriteString("|\n")
		if k == 0 {
			for j := range r {
				fmt.Fprintf(&b, "| %s ", strings.Repeat("-", width[j]))
			}
			b.WriteString("|\n")
		}
	}
	b.WriteString("\nstricter than " + peer + ":\n")
	for i := range shapes {
		if sh := &shapes[i]; sh.refuse != 0 && ha[i] != nil && ha[i].forwarded() {
			fmt.Fprintf(&b, "- %s: %s\n", sh.name, sh.stricter)
		}
	}
	return b.String()
}
