package placement

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// scratch is one Place call's working memory, reused across calls so that
// placing on a large fleet does not feed the garbage collector. Nothing in
// a result points into it.
type scratch struct {
	cands, byZone []candidate
	ids           []int32 // open-addressing table of allocator indices + 1
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// put returns sc to the pool, dropping the snapshot's strings it holds.
func (sc *scratch) put() {
	clear(sc.cands[:cap(sc.cands)])
	clear(sc.byZone[:cap(sc.byZone)])
	scratchPool.Put(sc)
}

var idSeed = maphash.MakeSeed()

// duplicate returns an allocator ID listed twice in as, if any: a hash
// table of indices, cleared and reused, in place of a map of strings.
func (sc *scratch) duplicate(as []Allocator) (string, bool) {
	size := 1 << bits.Len(uint(2*len(as))) // at least twice as many slots as IDs
	if cap(sc.ids) < size {
		sc.ids = make([]int32, size)
	}
	table := sc.ids[:size]
	clear(table)
	mask := uint64(size - 1)
	for i := range as {
		id := as[i].ID
		for j := maphash.String(idSeed, id) & mask; ; j = (j + 1) & mask {
			if table[j] == 0 {
				table[j] = int32(i + 1)
				break
			}
			if as[table[j]-1].ID == id {
				return id, true
			}
		}
	}
	return "", false
}
