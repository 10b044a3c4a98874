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

// The index is split into shards by the top bits of a key's hash, so that
// a table derived from another (Table.With) copies only the shards its
// change touches; the shards' headers are in blocks, so that it copies
// only the blocks it touches too. At 100 000 deployments a shard holds
// about 200 keys (12 KiB), a block 32 shards' headers (2 KiB): a change
// of one deployment copies about 30 KiB of the index, where 256 shards
// and one array of their headers cost it 118 KiB. (2 048 shards copied
// less, but their headers, twice as many, made a chain of lookups about
// a tenth slower.)
const (
	shardBits   = 10
	indexShards = 1 << shardBits
	blockBits   = 5
	blockShards = 1 << blockBits
	indexBlocks = indexShards / blockShards
)

// shardBlock holds the headers of blockShards shards.
type shardBlock [blockShards]shard

// index maps the route keys of a table to its deployments. Each shard is
// an open addressing hash table with linear probing over a power-of-two
// slice of slots, at most half full, with its key bytes in one arena. A
// slot holds the deployment, so a hit reads one slot and one key, and the
// deployment is known after the slot: the caller's reads of it wait for
// one cache miss, not for the key comparison (with the deployment's
// position stored beside the key instead, a chain of lookups each reading
// its deployment ran about a third slower). A miss mostly reads one slot,
// whose tag (bits of the hash and the key length) differs. The shards'
// headers are held in 32 blocks (64 KiB in all), which stay in cache,
// whose addresses are in the index itself: a lookup reads the block's
// address and its shard's header, then the slot.
//
// An index is built by its table's Builder, or derived by Table.With,
// and never modified afterwards: readers share it without locking, and
// a derived index shares the shards it did not change.
type index struct {
	seed     maphash.Seed
	blocks   [indexBlocks]*shardBlock // in the index itself, for one read less; a shard without slots is empty
	n        int                      // keys
	keyBytes uint64                   // bytes of keys, in all shards
	hint     int                      // expected keys per shard, for a new shard
}

type shard struct {
	seed  maphash.Seed // the index's
	slots []slot
	keys  []byte // the keys of the slots, one after another
	n     int    // slots in use
}

type slot struct {
	dep *Deployment // nil: the slot is empty
	tag uint32      // bits of the key's hash, then its length
	off uint32      // the key is keys[off : off+len]
}

// newIndex returns an index with room for keys keys (an estimate: it
// grows beyond it).
func newIndex(keys int) index {
	x := index{seed: maphash.MakeSeed(), hint: keys/indexShards + 1}
	all := make([]shardBlock, indexBlocks)
	for i := range x.blocks {
		x.blocks[i] = &all[i]
	}
	return x
}

// shard returns shard i's header.
func (x *index) shard(i int) *shard { return &x.blocks[i>>blockBits][i&(blockShards-1)] }

func tagOf(h uint64, n int) uint32 {
	return uint32(h>>24)&^keyLenMask | uint32(n)
}

func shardOf(h uint64) int { return int(h >> (64 - shardBits)) }

// lookup finds the deployment of key, or nil. It does not allocate.
func (x *index) lookup(key []byte) *Deployment {
	if len(key) > maxKeyLen || x.blocks[0] == nil {
		return nil
	}
	h := maphash.Bytes(x.seed, key)
	sh := x.shard(shardOf(h))
	if len(sh.slots) == 0 {
		return nil
	}
	tag, mask := tagOf(h, len(key)), uint64(len(sh.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &sh.slots[i]
		if s.dep == nil {
			return nil
		}
		if s.tag == tag && string(sh.keys[s.off:s.off+uint32(len(key))]) == string(key) {
			return s.dep
		}
	}
}

// touch reads the slots where the keys whose hashes are hs are looked
// for first, and returns part of them for the caller to keep. The reads
// are all this loop does, so the processor has many under way at once:
// a caller that touches the next few keys it adds has their slots, at
// random in a large index, fetched together instead of one after
// another (see Builder.readAhead).
func (x *index) touch(hs []uint64) uint32 {
	var t uint32
	for _, h := range hs {
		if sh := x.shard(shardOf(h)); len(sh.slots) > 0 {
			t ^= sh.slots[h&uint64(len(sh.slots)-1)].tag
		}
	}
	return t
}

// hash is the hash of key in x.
func (x *index) hash(key []byte) uint64 { return maphash.Bytes(x.seed, key) }

// fits reports whether n more bytes of keys fit: a shard's arena offsets
// are 32-bit, and all keys together are held to that too.
func (x *index) fits(n int) bool { return x.keyBytes+uint64(n) <= math.MaxUint32 }

// insert adds key for d. key is not in x, is at most maxKeyLen long, and
// fits. The shard it goes to must be x's own (not shared with another
// index): see own.
func (x *index) insert(key []byte, d *Deployment) {
	h := maphash.Bytes(x.seed, key)
	sh := x.shard(shardOf(h))
	if sh.slots == nil {
		*sh = newShard(x.seed, x.hint)
	}
	sh.insert(key, h, d)
	x.n++
	x.keyBytes += uint64(len(key))
}

func newShard(seed maphash.Seed, keys int) shard {
	size := 8
	for size < 2*keys {
		size *= 2
	}
	return shard{seed: seed, slots: make([]slot, size), keys: make([]byte, 0, keys*24)}
}

func (sh *shard) insert(key []byte, h uint64, d *Deployment) {
	if 2*(sh.n+1) > len(sh.slots) {
		sh.grow()
	}
	off := uint32(len(sh.keys))
	sh.keys = append(sh.keys, key...)
	sh.place(slot{dep: d, tag: tagOf(h, len(key)), off: off}, h)
	sh.n++
}

// place puts s, whose key hashes to h, in the first empty slot of its probe
// sequence.
func (sh *shard) place(s slot, h uint64) {
	mask := uint64(len(sh.slots) - 1)
	i := h & mask
	for sh.slots[i].dep != nil {
		i = (i + 1) & mask
	}
	sh.slots[i] = s
}

func (sh *shard) key(s *slot) []byte { return sh.keys[s.off : s.off+s.tag&keyLenMask] }

// grow doubles the slots and places every key again.
func (sh *shard) grow() {
	old := sh.slots
	sh.slots = make([]slot, 2*len(old))
	for i := range old {
		if s := &old[i]; s.dep != nil {
			sh.place(*s, maphash.Bytes(sh.seed, sh.key(s)))
		}
	}
}

// trim gives each arena back the room that appending left over, for a
// table that is built.
func (x *index) trim() {
	for i := range indexShards {
		if sh := x.shard(i); cap(sh.keys)-len(sh.keys) > len(sh.keys)/8 {
			sh.keys = append([]byte(nil), sh.keys...)
		}
	}
}
