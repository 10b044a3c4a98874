package routes

import (
	"hash/maphash"
	"math"
)

// maxKeyLen is the length of the longest route key: "<alias>.<kind>" with
// two 63-byte labels. IDs are shorter (MaxIDLen).
const maxKeyLen = 63 + 1 + 63

// keyLenBits of a slot's tag hold the key's length, the other bits of its
// hash.
const (
	keyLenBits = 7
	keyLenMask = 1<<keyLenBits - 1
)

// index maps the route keys of a table to its deployments. It is an open
// addressing hash table with linear probing over a power-of-two slice of
// slots, at most half full, with the key bytes in one arena. A slot holds
// the deployment, so a hit reads one slot and one key, and the deployment
// is known after the slot: the caller's reads of it wait for one cache
// miss, not for the key comparison (with the deployment's position
// stored beside the key instead, a chain of lookups each reading its
// deployment ran about a third slower). A miss mostly reads one slot, whose tag (bits of the hash and
// the key length) differs.
//
// A table's index is built by its Builder and never modified afterwards:
// readers share it without locking.
type index struct {
	seed  maphash.Seed
	slots []slot
	keys  []byte // the keys of the slots, one after another
	n     int    // slots in use
}

type slot struct {
	dep *Deployment // nil: the slot is empty
	tag uint32      // the high bits of the key's hash, then its length
	off uint32      // the key is keys[off : off+len]
}

// newIndex returns an index with room for keys keys of keyBytes bytes in
// all (estimates: it grows beyond them).
func newIndex(keys, keyBytes int) index {
	size := 8
	for size < 2*keys {
		size *= 2
	}
	return index{seed: maphash.MakeSeed(), slots: make([]slot, size), keys: make([]byte, 0, keyBytes)}
}

func tagOf(h uint64, n int) uint32 {
	return uint32(h>>32)&^keyLenMask | uint32(n)
}

// lookup finds the deployment of key, or nil. It does not allocate.
func (x *index) lookup(key []byte) *Deployment {
	if len(key) > maxKeyLen || len(x.slots) == 0 {
		return nil
	}
	h := maphash.Bytes(x.seed, key)
	tag, mask := tagOf(h, len(key)), uint64(len(x.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.dep == nil {
			return nil
		}
		if s.tag == tag && string(x.keys[s.off:s.off+uint32(len(key))]) == string(key) {
			return s.dep
		}
	}
}

// fits reports whether n more bytes of keys fit in the arena, whose
// offsets are 32-bit.
func (x *index) fits(n int) bool { return uint64(len(x.keys))+uint64(n) <= math.MaxUint32 }

// insert adds key for d. key is not in x, is at most maxKeyLen long, and
// fits.
func (x *index) insert(key []byte, d *Deployment) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	h := maphash.Bytes(x.seed, key)
	off := uint32(len(x.keys))
	x.keys = append(x.keys, key...)
	x.place(slot{dep: d, tag: tagOf(h, len(key)), off: off}, h)
	x.n++
}

// place puts s, whose key hashes to h, in the first empty slot of its probe
// sequence.
func (x *index) place(s slot, h uint64) {
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for x.slots[i].dep != nil {
		i = (i + 1) & mask
	}
	x.slots[i] = s
}

// grow doubles the slots and places every key again.
func (x *index) grow() {
	old := x.slots
	x.slots = make([]slot, 2*len(old))
	for _, s := range old {
		if s.dep != nil {
			key := x.keys[s.off : s.off+uint32(s.tag&keyLenMask)]
			x.place(s, maphash.Bytes(x.seed, key))
		}
	}
}

// trim gives the arena back the room that appending left over, for a
// table that is built.
func (x *index) trim() {
	if cap(x.keys)-len(x.keys) > len(x.keys)/8 {
		x.keys = append([]byte(nil), x.keys...)
	}
}
