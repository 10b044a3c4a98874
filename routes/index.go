package routes

import (
	"encoding/binary"
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

// recordHead is the size of the head of a key's record in the arena: the
// position of its deployment in Table.Deployments, little-endian.
const recordHead = 4

// index maps the route keys of a table to its deployments. It is an open
// addressing hash table with linear probing over a power-of-two slice of
// 8-byte slots, at most half full, and an arena of records, each the
// position of a deployment and a key. A hit reads one slot and one record
// (then the table's deployment pointer, a denser array); a miss mostly
// reads one slot, whose tag (bits of the hash and the key length) differs.
// Neither holds a pointer, so the garbage collector does not scan them.
//
// A table's index is built by its Builder and never modified afterwards:
// readers share it without locking.
type index struct {
	seed  maphash.Seed
	slots []slot
	arena []byte // records: recordHead, then the key
	n     int    // slots in use
}

type slot struct {
	tag uint32 // the high bits of the key's hash, then its length; 0: empty
	off uint32 // the key's record is arena[off : off+recordHead+len]
}

// newIndex returns an index with room for about keys keys.
func newIndex(keys int) index {
	size := 8
	for size < 2*keys {
		size *= 2
	}
	return index{seed: maphash.MakeSeed(), slots: make([]slot, size)}
}

// tagOf is the tag of a key of length n, 1 to maxKeyLen, that hashes to h;
// it is never 0.
func tagOf(h uint64, n int) uint32 {
	return uint32(h>>32)&^keyLenMask | uint32(n)
}

// lookup returns the position of key's deployment, or -1. It does not
// allocate.
func (x *index) lookup(key []byte) int {
	if len(key) > maxKeyLen || len(x.slots) == 0 {
		return -1
	}
	h := maphash.Bytes(x.seed, key)
	tag, mask := tagOf(h, len(key)), uint64(len(x.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s.tag == 0 {
			return -1
		}
		if s.tag == tag {
			r := x.arena[s.off : s.off+recordHead+uint32(len(key))]
			if string(r[recordHead:]) == string(key) {
				return int(binary.LittleEndian.Uint32(r))
			}
		}
	}
}

// fits reports whether keys more keys of n bytes in all fit in the arena,
// whose offsets are 32-bit.
func (x *index) fits(keys, n int) bool {
	return uint64(len(x.arena))+uint64(keys*recordHead+n) <= math.MaxUint32
}

// insert adds key for the deployment at pos. key is not in x, is 1 to
// maxKeyLen bytes long, and fits.
func (x *index) insert(key []byte, pos int) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	h := maphash.Bytes(x.seed, key)
	off := uint32(len(x.arena))
	x.arena = binary.LittleEndian.AppendUint32(x.arena, uint32(pos))
	x.arena = append(x.arena, key...)
	x.place(slot{tag: tagOf(h, len(key)), off: off}, h)
	x.n++
}

// place puts s, whose key hashes to h, in the first empty slot of its probe
// sequence.
func (x *index) place(s slot, h uint64) {
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for x.slots[i].tag != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = s
}

// grow doubles the slots and places every key again.
func (x *index) grow() {
	old := x.slots
	x.slots = make([]slot, 2*len(old))
	for _, s := range old {
		if s.tag != 0 {
			start := s.off + recordHead
			x.place(s, maphash.Bytes(x.seed, x.arena[start:start+s.tag&keyLenMask]))
		}
	}
}

// finish moves each key to the deployment at position to[p] for the one
// at p, and gives the arena back the room that appending left over.
func (x *index) finish(to []uint32) {
	if cap(x.arena)-len(x.arena) > len(x.arena)/8 {
		x.arena = append([]byte(nil), x.arena...)
	}
	for _, s := range x.slots {
		if s.tag != 0 {
			r := x.arena[s.off : s.off+recordHead]
			binary.LittleEndian.PutUint32(r, to[binary.LittleEndian.Uint32(r)])
		}
	}
}
