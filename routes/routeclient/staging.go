package routeclient

import "github.com/switchyard/switchyard/routes/wire"

// testHookBody, when set, is given each body read.
var testHookBody func(body []byte)

// staging is a full table's snapshot file being written beside the
// snapshot (wire.StageFile), by a goroutine of its own.
type staging struct {
	done chan struct{}
	f    *wire.Staged
	err  error
	size int64 // the message's bytes
}

// stage starts writing full, a full message, to a file staged beside
// path.
func stage(path string, full []byte) *staging {
	g := &staging{done: make(chan struct{}), size: int64(len(full))}
	go func() {
		defer close(g.done)
		g.f, g.err = wire.StageFile(path, full)
	}()
	return g
}

// wait returns the staged file once it is written.
func (g *staging) wait() (*wire.Staged, error) {
	<-g.done
	return g.f, g.err
}

// abort removes the staged file once it is written, without waiting for
// it; a nil g does nothing.
func (g *staging) abort() {
	if g == nil {
		return
	}
	go func() {
		if f, err := g.wait(); err == nil {
			f.Abort()
		}
	}()
}
