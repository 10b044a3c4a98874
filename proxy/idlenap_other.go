//go:build !linux

package proxy

import (
	"errors"
	"sync/atomic"
	"time"
)

// MaxIdleNap bounds Config.IdleNap.
const MaxIdleNap = time.Millisecond

// idleNapper is Linux's (idlenap.go): naps wait on an eventfd and sleep
// with nanosleep.
type idleNapper struct {
	naps, parks, slacks atomic.Uint64
}

func newIdleNapper(time.Duration) (*idleNapper, error) {
	return nil, errors.New("proxy: idle naps need Linux")
}

func (n *idleNapper) run()                      {}
func (n *idleNapper) close()                    {}
func (n *idleNapper) requestStarted(time.Time)  {}
func (n *idleNapper) responseArrived(time.Time) {}
func (n *idleNapper) bodyMoved()                {}
