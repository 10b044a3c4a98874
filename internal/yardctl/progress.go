package yardctl

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressLine says on a terminal how far a long run is ("12000 of 100000
// deployments read, 3.1s"), redrawn in place at most every 200 ms. It
// says nothing when stderr is not a terminal, nor during the first
// second. A nil *progressLine does nothing.
type progressLine struct {
	w            io.Writer
	what         string
	total        int
	start, drawn time.Time
	shown        bool
}

// newProgress returns the progress line of a run over total items, or
// nil when stderr is not a terminal.
func (e *env) newProgress(what string, total int) *progressLine {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressLine{w: f, what: what, total: total, start: time.Now()}
}

// set says that done items are done.
func (p *progressLine) set(done int) {
	if p == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.drawn) < 200*time.Millisecond {
		return
	}
	p.drawn, p.shown = now, true
	fmt.Fprintf(p.w, "\r%d of %d %s, %.1fs\x1b[K", done, p.total, p.what, now.Sub(p.start).Seconds())
}

// clear erases the line, before other output or at the end.
func (p *progressLine) clear() {
	if p == nil || !p.shown {
		return
	}
	p.shown = false
	fmt.Fprint(p.w, "\r\x1b[K")
}
