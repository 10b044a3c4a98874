package zones

import (
	"hash/maphash"
	"iter"
	"slices"
)

// The entries of a snapshot are held in an entrySet: a persistent set of
// entries found by their instance's key (address and ID), split into
// shards by the top bits of the key's hash. A new version shares every
// shard with the one it came from but those its change touched, as
// cowmap does, so a change costs what it touches. Each shard is an open
// addressing table with linear probing over a power-of-two slice of
// slots; a slot holds the entry and its key's hash, and the key itself is
// the entry's (entry.key), which is never changed: a slot
// costs 16 bytes instead of a Go map's key, value and control byte.
const (
	entryShardBits = 10
	entryShards    = 1 << entryShardBits
)

var entrySeed = maphash.MakeSeed()

// hashKey hashes an instance key by its address (all but unique to an
// instance); the ID is compared, not hashed.
func hashKey(k instKey) uint64 { return maphash.String(entrySeed, k.addr) }

type entrySet struct {
	shards *[entryShards]*entryShard // a nil shard is empty
	n      int
}

type entryShard struct {
	slots []entrySlot // len a power of two, at most 3/4 in use
	n     int
}

type entrySlot struct {
	e *entry // nil: the slot is empty
	h uint64 // the hash of e's key
}

func shardOfKey(h uint64) int { return int(h >> (64 - entryShardBits)) }

// get finds the entry of k, or nil. It does not allocate.
func (s *entrySet) get(k instKey) *entry { return s.getHashed(k, hashKey(k)) }

// getHashed is get for a key whose hash is h.
func (s *entrySet) getHashed(k instKey, h uint64) *entry {
	sh := s.shards[shardOfKey(h)]
	if sh == nil {
		return nil
	}
	mask := uint64(len(sh.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &sh.slots[i]
		if sl.e == nil {
			return nil
		}
		if sl.h == h && sl.e.key == k {
			return sl.e
		}
	}
}

// anyAt reports whether f holds for some entry of an instance at addr.
// The entries at one address share a hash, so they are in one run of
// slots from its home slot.
func (s *entrySet) anyAt(addr string, f func(*entry) bool) bool {
	h := hashKey(instKey{addr: addr})
	sh := s.shards[shardOfKey(h)]
	if sh == nil {
		return false
	}
	mask := uint64(len(sh.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &sh.slots[i]
		if sl.e == nil {
			return false
		}
		if sl.h == h && sl.e.key.addr == addr && f(sl.e) {
			return true
		}
	}
}

// touch reads the slot where the entry of a key whose hash is h is
// looked for first, and returns part of it, for the caller to keep: a
// caller that touches the keys of the next few lookups has their slots,
// which are at random in a large set, fetched together instead of one
// after another (see snapEdit.readAhead).
func (s *entrySet) touch(h uint64) uint64 {
	sh := s.shards[shardOfKey(h)]
	if sh == nil {
		return 0
	}
	return sh.slots[h&uint64(len(sh.slots)-1)].h
}

// Len is the number of entries.
func (s *entrySet) Len() int { return s.n }

// All yields every entry, in no particular order.
func (s *entrySet) All() iter.Seq[*entry] {
	return func(yield func(*entry) bool) {
		for _, sh := range s.shards {
			if sh == nil {
				continue
			}
			for _, sl := range sh.slots {
				if sl.e != nil && !yield(sl.e) {
					return
				}
			}
		}
	}
}

// entryEditor builds the next version of an entrySet. It is not safe for
// concurrent use, and must not be used after done.
type entryEditor struct {
	s     *entrySet
	owned [entryShards / 64]uint64 // shards copied for this version
	hint  int                      // expected entries per shard, for a new shard
}

// edit starts the next version of s, which s is not affected by.
func (s *entrySet) edit() *entryEditor {
	next := *s.shards
	return &entryEditor{s: &entrySet{shards: &next, n: s.n}, hint: s.n/entryShards + 1}
}

// buildEntries returns an editor of a new, empty set with room for about
// n entries.
func buildEntries(n int) *entryEditor {
	return &entryEditor{s: &entrySet{shards: new([entryShards]*entryShard)}, hint: n/entryShards + 1}
}

// own returns shard i of the new version, copied from the old one at its
// first write (or made, when it was empty).
func (x *entryEditor) own(i int) *entryShard {
	sh := x.s.shards[i]
	if x.owned[i/64]&(1<<(i%64)) == 0 {
		x.owned[i/64] |= 1 << (i % 64)
		if sh == nil {
			size := 8
			for 3*size < 4*x.hint {
				size *= 2
			}
			sh = &entryShard{slots: make([]entrySlot, size)}
		} else {
			sh = &entryShard{slots: slices.Clone(sh.slots), n: sh.n}
		}
		x.s.shards[i] = sh
	}
	return sh
}

func (x *entryEditor) get(k instKey) *entry { return x.s.get(k) }

// add puts e in the set; its key is not in it.
func (x *entryEditor) add(e *entry) { x.addHashed(e, hashKey(e.key)) }

// addHashed is add for an entry whose key's hash is h.
func (x *entryEditor) addHashed(e *entry, h uint64) {
	sh := x.own(shardOfKey(h))
	if 4*(sh.n+1) > 3*len(sh.slots) {
		old := sh.slots
		sh.slots = make([]entrySlot, 2*len(old))
		for _, sl := range old {
			if sl.e != nil {
				sh.place(sl)
			}
		}
	}
	sh.place(entrySlot{e: e, h: h})
	sh.n++
	x.s.n++
}

// place puts sl in the first empty slot of its probe sequence.
func (sh *entryShard) place(sl entrySlot) {
	mask := uint64(len(sh.slots) - 1)
	i := sl.h & mask
	for sh.slots[i].e != nil {
		i = (i + 1) & mask
	}
	sh.slots[i] = sl
}

// remove takes k's entry out of the set, if it is there.
func (x *entryEditor) remove(k instKey) {
	h := hashKey(k)
	if x.s.shards[shardOfKey(h)] == nil || x.s.get(k) == nil {
		return
	}
	sh := x.own(shardOfKey(h))
	mask := uint64(len(sh.slots) - 1)
	i := h & mask
	for sl := &sh.slots[i]; sl.h != h || sl.e.key != k; sl = &sh.slots[i] {
		i = (i + 1) & mask
	}
	// Backward shift: move up each later slot of the run that may sit
	// at i (its probe sequence starts at or before i), so that no probe
	// meets an empty slot before its key.
	for j := i; ; {
		sh.slots[i] = entrySlot{}
		for {
			j = (j + 1) & mask
			sl := sh.slots[j]
			if sl.e == nil {
				sh.n--
				x.s.n--
				return
			}
			if (j-sl.h)&mask >= (j-i)&mask {
				sh.slots[i] = sl
				i = j
				break
			}
		}
	}
}

// done returns the new version.
func (x *entryEditor) done() *entrySet {
	s := x.s
	x.s = nil
	return s
}
