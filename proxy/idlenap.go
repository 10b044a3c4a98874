//go:build linux

package proxy

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Idle naps (Config.IdleNap): interrupt coalescing for a proxy on one CPU.
//
// With GOMAXPROCS=1, when the Go scheduler runs out of goroutines it
// blocks its thread in epoll_wait. The next packet for the proxy then
// wakes that thread from another CPU, which on a virtual machine costs
// the waking CPU an inter-processor interrupt (a trip through the
// hypervisor) and the proxy's CPU an idle exit and a context switch. Under
// load with the proxy not saturated, that happens for most requests: the
// proxy handles one or two, sleeps, and is woken again (docs/notes/wakeups.md,
// "The load side's CPU, and idle naps").
//
// The napper is a goroutine that the scheduler runs when it has nothing
// else to do: it waits on an eventfd that it writes to (an edge for the
// runtime's edge-triggered poller) as it parks, so the scheduler's next
// network poll, made when its run queue is empty, returns it with
// whatever sockets became ready.
// If a request started, an instance's response arrived or a response
// body read moved bytes within the last napQuietAfter, and the last cycle
// started at most napMaxBatch requests,
// it sleeps for the nap (nanosleep, holding the processor, so the
// scheduler cannot block in epoll_wait meanwhile), and the requests and
// responses that arrive during the nap are collected by one poll
// afterwards: fewer, larger batches, and no wake-up interrupts. After a
// larger batch it yields at once. After napQuietAfter with neither it
// stops arming itself and waits until a request or a response arrives
// (note, active), so an idle proxy blocks in epoll_wait as usual.
// Responses count because under load the requests pause while the
// clients wait for them: counting requests alone, the napper parked in
// those pauses and every response woke the proxy again. Body reads count
// for the same reason within a response: a 1 MiB body comes in a dozen
// or more parts, and without them each part woke the proxy (three to
// five wake-up interrupts per 1 MiB request, against about one with).
//
// A request may wait up to the nap (plus the timer's latency: on a
// virtual machine about 20 µs, BenchmarkNapLength) for the proxy to see
// it; a saturated proxy (large batches) does not nap.
type idleNapper struct {
	f     *os.File // the eventfd, registered with the runtime's poller
	rc    syscall.RawConn
	efd   uintptr
	nap   syscall.Timespec
	napNs int64

	work   atomic.Uint64 // requests started (note)
	bodies atomic.Uint64 // response body reads that moved bytes (moved)
	lastAt atomic.Int64  // last request, response or body part seen, Unix ns
	parked atomic.Bool   // waiting for a request or response, not armed
	closed atomic.Bool

	naps, parks atomic.Uint64 // for tests and the log
	slacks      atomic.Uint64 // timer slack set (a thread's first nap, or a late one)
	done        chan struct{} // closed when run returns
}

const (
	// napMaxBatch: a cycle that started more requests than this is a
	// batch already; the proxy is busy enough without a nap.
	napMaxBatch = 3
	// napQuietAfter: with no new request or response for this long, the
	// napper waits for one instead of napping.
	napQuietAfter = 100 * time.Microsecond
	// napOversleep: a nap longer than asked by more than this ran with
	// the default timer slack (50 µs; with 1 µs, a nap overruns by the
	// timer's latency, about 20 µs here, BenchmarkNapLength).
	napOversleep = 40 * time.Microsecond
	// MaxIdleNap bounds Config.IdleNap.
	MaxIdleNap = time.Millisecond
)

const (
	efdNonblock     = 0x800   // EFD_NONBLOCK
	efdCloexec      = 0x80000 // EFD_CLOEXEC
	prSetTimerslack = 29      // PR_SET_TIMERSLACK
)

var errIdleNap = errors.New("proxy: idle nap: eventfd")

func newIdleNapper(d time.Duration) (*idleNapper, error) {
	fd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, efdNonblock|efdCloexec, 0)
	if e != 0 {
		return nil, errors.Join(errIdleNap, e)
	}
	f := os.NewFile(fd, "idle-nap") // non-blocking: pollable
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, errors.Join(errIdleNap, err)
	}
	return &idleNapper{f: f, rc: rc, efd: fd, nap: syscall.NsecToTimespec(int64(d)), napNs: int64(d), done: make(chan struct{})}, nil
}

var eventOne = [8]byte{1}

// arm adds one to the eventfd's counter: an event for the poller. The
// runtime registers descriptors edge-triggered, and every write to an
// eventfd is an edge, readable before or not, so the counter is never
// read back (that was a system call per cycle; it would take 2^64 - 2
// writes to fill).
func (n *idleNapper) arm() {
	syscall.RawSyscall(syscall.SYS_WRITE, n.efd, uintptr(unsafe.Pointer(&eventOne[0])), 8)
}

var _ progress = (*idleNapper)(nil)

func (n *idleNapper) requestStarted(at time.Time)  { n.note(at.UnixNano()) }
func (n *idleNapper) responseArrived(at time.Time) { n.active(at.UnixNano()) }
func (n *idleNapper) bodyMoved()                   { n.moved() }

// note counts a request that started at (Unix ns), and wakes a napper
// that waits for one.
func (n *idleNapper) note(at int64) {
	n.work.Add(1)
	n.lastAt.Store(at)
	n.unpark()
}

// active records other work at (Unix ns): an instance's response that
// arrived. Responses keep the napper napping while requests pause (the
// clients wait for them), so that the responses still on their way are
// collected by naps too rather than each waking the proxy.
func (n *idleNapper) active(at int64) {
	if at > n.lastAt.Load() {
		n.lastAt.Store(at)
	}
	n.unpark()
}

// moved records that a response body read moved bytes: a body streaming
// keeps the napper napping between its reads (the cycle notes the time),
// so that the instance's next segments are collected by a nap rather
// than each waking the proxy. No clock read here: one per read is paid
// by the napper, once per cycle.
func (n *idleNapper) moved() {
	n.bodies.Add(1)
	n.unpark()
}

// unpark arms the eventfd for a napper that waits for work, once.
func (n *idleNapper) unpark() {
	if n.parked.Load() && n.parked.CompareAndSwap(true, false) {
		n.arm()
	}
}

// sleep naps, holding the processor; now is the time the cycle started
// (Unix ns).
func (n *idleNapper) sleep(now int64) {
	syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&n.nap)), 0, 0)
	// The kernel lengthens a sleep by the thread's timer slack (50 µs by
	// default, BenchmarkNapLength): a nap that overslept by more than
	// napOversleep ran on a thread that still has it, so ask for 1 µs for
	// this thread. The slack is per thread and the napper may run on any
	// of the runtime's threads; asking before every nap cost a system
	// call per nap.
	if time.Now().UnixNano()-now > n.napNs+int64(napOversleep) {
		n.slacks.Add(1)
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1000, 0)
	}
}

// close ends run.
func (n *idleNapper) close() {
	n.closed.Store(true)
	n.f.Close() // a parked wait returns os.ErrClosed
}

// run is the napper's loop; it returns after close.
func (n *idleNapper) run() {
	defer close(n.done)
	var last, lastBodies uint64
	for !n.closed.Load() {
		// Let the goroutines that the same poll made ready run first.
		runtime.Gosched()
		w := n.work.Load()
		batch := w - last
		last = w
		wait := false // for a request or response, instead of arming now
		now := time.Now().UnixNano()
		if b := n.bodies.Load(); b != lastBodies {
			lastBodies = b
			if now > n.lastAt.Load() {
				n.lastAt.Store(now)
			}
		}
		seen := n.lastAt.Load()
		switch {
		case now-seen > int64(napQuietAfter):
			// Quiet: wait for a request, response or body part (note,
			// active and moved arm the eventfd).
			n.parks.Add(1)
			n.parked.Store(true)
			if n.work.Load() != last || n.lastAt.Load() != seen || n.bodies.Load() != lastBodies {
				n.parked.CompareAndSwap(true, false) // one came in between
			}
			wait = true
		case batch <= napMaxBatch:
			n.naps.Add(1)
			n.sleep(now)
		}
		// Park until the poller reports the eventfd readable. The edge is
		// made inside the read, after the runtime has reset the
		// descriptor's readiness: an edge made before could be reported
		// (by another poller, or the monitor thread's) and then reset,
		// and the napper would wait for good.
		first := true
		if err := n.rc.Read(func(uintptr) bool {
			if !first {
				return true
			}
			first = false
			if wait {
				return !n.parked.Load() // false: note will arm
			}
			n.arm()
			return false
		}); err != nil {
			return // closed
		}
	}
}
