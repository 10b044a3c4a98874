package placement

// picker is the pipeline's last steps: within a chosen zone, it places
// PerZone instances one after another, each on a distinct feasible
// allocator chosen by the strategy, ties going to the smaller ID.
type picker struct {
	strategy Strategy
	mem      int64
	perZone  int
	key      uint64 // Random only: what the seed and the deployment make of an ID
}

func newPicker(o Options, r Request) *picker {
	return &picker{strategy: o.Strategy, mem: r.MemoryBytes, perZone: r.PerZone,
		key: mix(uint64(o.Seed) ^ mix(fnv64(r.Deployment)))}
}

// pick appends z's placements to out, one instance after another. It
// reorders z.cands: the first k are the allocators the first k instances
// took, each with its free memory less the instance's. An allocator taken
// holds the deployment from then on, so later instances look only past
// the first k.
func (p *picker) pick(out []Placement, z *zone) []Placement {
	c := z.cands
	for k := 0; k < p.perZone; k++ {
		j := k
		switch p.strategy {
		case BestFit:
			j = k + bestFit(c[k:], p.mem)
		case FirstFit:
			j = k + firstFit(c[k:])
		case Random:
			j = k + random(c[k:], p.key)
		}
		c[k], c[j] = c[j], c[k]
		c[k].free -= p.mem
		out = append(out, Placement{Zone: z.name, Allocator: c[k].id})
	}
	return out
}

// bestFit returns the index of the candidate with the least free memory
// left after placing mem on it, the smaller ID on a tie.
func bestFit(c []candidate, mem int64) int {
	best := 0
	for i := 1; i < len(c); i++ {
		left, bestLeft := c[i].free-mem, c[best].free-mem
		if left < bestLeft || left == bestLeft && c[i].id < c[best].id {
			best = i
		}
	}
	return best
}

// firstFit returns the index of the candidate with the smallest ID.
func firstFit(c []candidate) int {
	first := 0
	for i := 1; i < len(c); i++ {
		if c[i].id < c[first].id {
			first = i
		}
	}
	return first
}

// random returns the index of the candidate whose ID scores lowest under
// key: a seeded random draw (rendezvous hashing) that depends on the IDs
// only, not on their order, and costs no sort.
func random(c []candidate, key uint64) int {
	best, bestScore := 0, mix(fnv64(c[0].id)^key)
	for i := 1; i < len(c); i++ {
		score := mix(fnv64(c[i].id) ^ key)
		if score < bestScore || score == bestScore && c[i].id < c[best].id {
			best, bestScore = i, score
		}
	}
	return best
}

// fnv64 is the 64-bit FNV-1a hash of s.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is SplitMix64's finalizer: every bit of x moves about half the bits
// of the result, so that close IDs ("a-1", "a-2") score far apart.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
