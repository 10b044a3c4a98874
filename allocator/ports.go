package allocator

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// ports hands out the instances' ports from the allocator's range: the
// lowest one that no instance holds and that can be bound now (something
// else on the host may hold it).
type ports struct {
	mu       sync.Mutex
	min, max int
	used     map[int]bool
}

func newPorts(lo, hi int) *ports { return &ports{min: lo, max: hi, used: map[int]bool{}} }

// errNoPort is the reason of an instance that gets no port.
type errNoPort struct{ lo, hi int }

func (e errNoPort) Error() string {
	return fmt.Sprintf("no free port in %d-%d", e.lo, e.hi)
}

func (p *ports) take(host string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for port := p.min; port <= p.max; port++ {
		if p.used[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		p.used[port] = true
		return port, nil
	}
	return 0, errNoPort{p.min, p.max}
}

// hold marks a port an adopted instance holds.
func (p *ports) hold(port int) {
	p.mu.Lock()
	p.used[port] = true
	p.mu.Unlock()
}

func (p *ports) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

func (p *ports) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}
