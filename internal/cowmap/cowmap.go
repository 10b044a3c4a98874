// Package cowmap is a persistent map for tables that change a little at a
// time: a new version shares everything with the one it came from but the
// shards a change touched, so a change costs about what it changes (a
// shard holds 1/1024 of the keys), and readers of an older version are
// never disturbed and need no lock.
package cowmap

import (
	"hash/maphash"
	"iter"
	"maps"
	"unsafe"
)

const (
	shardBits = 10
	shards    = 1 << shardBits
)

// Map is one immutable version of a map. The zero Map is not usable: make
// one with New.
type Map[K comparable, V any] struct {
	hash   func(K) uint64
	shards *[shards]map[K]V // a nil shard is empty
	n      int
}

// New returns an empty Map whose keys are spread over shards by hash,
// which must spread the top bits of its result (String and Pointer do).
func New[K comparable, V any](hash func(K) uint64) *Map[K, V] {
	return &Map[K, V]{hash: hash, shards: new([shards]map[K]V)}
}

// Build returns an Editor of a new, empty Map with room for about n keys,
// for a map built whole: its shards are the editor's own from the start,
// and do not grow as it fills.
func Build[K comparable, V any](hash func(K) uint64, n int) *Editor[K, V] {
	e := &Editor[K, V]{m: New[K, V](hash)}
	per := n / shards
	for i := range e.m.shards {
		e.m.shards[i] = make(map[K]V, per+per/8)
	}
	for i := range e.owned {
		e.owned[i] = ^uint64(0)
	}
	return e
}

var seed = maphash.MakeSeed()

// String hashes a string key.
func String(s string) uint64 { return maphash.String(seed, s) }

// Pointer hashes a pointer key by its address, which Go does not move.
func Pointer[T any](p *T) uint64 {
	return uint64(uintptr(unsafe.Pointer(p))) * 0x9e3779b97f4a7c15
}

func (m *Map[K, V]) shard(k K) int { return int(m.hash(k) >> (64 - shardBits)) }

// Len is the number of keys.
func (m *Map[K, V]) Len() int { return m.n }

// Get returns the value of k. It does not allocate (a key made from
// bytes for the call, string(b), is copied: the hash is a function value).
func (m *Map[K, V]) Get(k K) (V, bool) {
	v, ok := m.shards[m.shard(k)][k]
	return v, ok
}

// All yields every key and value, in no particular order.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for _, s := range m.shards {
			for k, v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// Edit starts the next version of m, which m is not affected by.
func (m *Map[K, V]) Edit() *Editor[K, V] {
	next := *m.shards
	return &Editor[K, V]{m: &Map[K, V]{hash: m.hash, shards: &next, n: m.n}}
}

// Editor builds a new version of a Map. It is not safe for concurrent
// use, and must not be used after Done.
type Editor[K comparable, V any] struct {
	m     *Map[K, V]
	owned [shards / 64]uint64 // shards copied for this version
}

// own returns shard i of the new version, copied from the old one at its
// first write.
func (e *Editor[K, V]) own(i int) map[K]V {
	s := e.m.shards[i]
	if e.owned[i/64]&(1<<(i%64)) == 0 {
		e.owned[i/64] |= 1 << (i % 64)
		if s = maps.Clone(s); s == nil {
			s = map[K]V{}
		}
		e.m.shards[i] = s
	}
	return s
}

// Get returns the value of k in the version being built.
func (e *Editor[K, V]) Get(k K) (V, bool) { return e.m.Get(k) }

// Set sets k to v.
func (e *Editor[K, V]) Set(k K, v V) {
	s := e.own(e.m.shard(k))
	before := len(s)
	s[k] = v
	e.m.n += len(s) - before
}

// Swap sets k to v and returns the value it had, if any: Get and Set
// in one call, which finds and copies k's shard once.
func (e *Editor[K, V]) Swap(k K, v V) (V, bool) {
	s := e.own(e.m.shard(k))
	before := len(s)
	old, had := s[k]
	s[k] = v
	e.m.n += len(s) - before
	return old, had
}

// Delete removes k, if present.
func (e *Editor[K, V]) Delete(k K) {
	i := e.m.shard(k)
	if _, ok := e.m.shards[i][k]; !ok {
		return
	}
	delete(e.own(i), k)
	e.m.n--
}

// Len is the number of keys of the version being built.
func (e *Editor[K, V]) Len() int { return e.m.n }

// Done returns the new version.
func (e *Editor[K, V]) Done() *Map[K, V] {
	m := e.m
	e.m = nil
	return m
}
