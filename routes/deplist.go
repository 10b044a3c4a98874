package routes

import (
	"iter"
	"slices"
	"strings"
)

// Chunk sizes of a depList: a table built whole is cut into chunks of
// chunkFill deployments; a chunk that a change makes larger than
// chunkMax is cut again.
const (
	chunkFill = 256
	chunkMax  = 2 * chunkFill
)

// depList is a table's deployments sorted by ID, in chunks. It is
// persistent: splice returns a new list that shares every chunk a change
// does not touch, so a change costs the chunks it touches and the chunk
// index (n/256 entries), and a list already published is never modified.
type depList struct {
	chunks [][]*Deployment // each sorted, not empty; every ID of one below every ID of the next
	n      int
}

// newDepList cuts sorted into chunks, which share its array.
func newDepList(sorted []*Deployment) depList {
	l := depList{n: len(sorted), chunks: make([][]*Deployment, 0, (len(sorted)+chunkFill-1)/chunkFill)}
	for i := 0; i < len(sorted); i += chunkFill {
		j := min(i+chunkFill, len(sorted))
		l.chunks = append(l.chunks, sorted[i:j:j])
	}
	return l
}

// all yields the deployments in ID order.
func (l *depList) all() iter.Seq[*Deployment] {
	return func(yield func(*Deployment) bool) {
		for _, c := range l.chunks {
			for _, d := range c {
				if !yield(d) {
					return
				}
			}
		}
	}
}

// flat returns the deployments in one slice: the single chunk's when
// there is one, else a copy.
func (l *depList) flat() []*Deployment {
	if len(l.chunks) == 1 {
		return l.chunks[0]
	}
	out := make([]*Deployment, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

// chunkOf is the index of the chunk that holds id, or would: the first
// whose last ID is not below id, else the last chunk.
func (l *depList) chunkOf(id string) int {
	i, _ := slices.BinarySearchFunc(l.chunks, id, func(c []*Deployment, id string) int {
		return strings.Compare(c[len(c)-1].ID, id)
	})
	return min(i, len(l.chunks)-1)
}

// after returns up to limit deployments whose IDs follow id, and whether
// more follow them.
func (l *depList) after(id string, limit int) ([]*Deployment, bool) {
	if l.n == 0 {
		return nil, false
	}
	var out []*Deployment
	ci := l.chunkOf(id)
	c := l.chunks[ci]
	i, found := slices.BinarySearchFunc(c, id, func(d *Deployment, id string) int { return strings.Compare(d.ID, id) })
	if found {
		i++
	}
	for ; ci < len(l.chunks); ci, i = ci+1, 0 {
		for _, d := range l.chunks[ci][i:] {
			if len(out) == limit {
				return out, true
			}
			out = append(out, d)
		}
	}
	return out, false
}

// splice returns l without the deployments of gone (sorted by ID, each in
// l) and with those of added (sorted by ID, none in l but for those of
// gone): the chunks they fall in are merged again, cut when too long,
// dropped when empty; the others are shared.
func (l *depList) splice(gone, added []*Deployment) depList {
	if l.n == 0 {
		return newDepList(slices.Clone(added))
	}
	type edit struct{ gone, added []*Deployment }
	edits := map[int]*edit{}
	at := func(id string) *edit {
		ci := l.chunkOf(id)
		e := edits[ci]
		if e == nil {
			e = &edit{}
			edits[ci] = e
		}
		return e
	}
	for _, d := range gone {
		e := at(d.ID)
		e.gone = append(e.gone, d)
	}
	for _, d := range added {
		e := at(d.ID)
		e.added = append(e.added, d)
	}
	touched := make([]int, 0, len(edits))
	for ci := range edits {
		touched = append(touched, ci)
	}
	slices.Sort(touched)
	out := depList{n: l.n - len(gone) + len(added), chunks: make([][]*Deployment, 0, len(l.chunks)+len(touched))}
	next := 0
	for _, ci := range touched {
		out.chunks = append(out.chunks, l.chunks[next:ci]...)
		next = ci + 1
		e := edits[ci]
		merged := mergeChunk(l.chunks[ci], e.gone, e.added)
		for len(merged) > chunkMax {
			out.chunks = append(out.chunks, merged[:chunkFill:chunkFill])
			merged = merged[chunkFill:]
		}
		if len(merged) > 0 {
			out.chunks = append(out.chunks, merged)
		}
	}
	out.chunks = append(out.chunks, l.chunks[next:]...)
	return out
}

// mergeChunk returns a new chunk: c without gone, with added (both
// sorted). A deployment of gone is matched by pointer.
func mergeChunk(c, gone, added []*Deployment) []*Deployment {
	out := make([]*Deployment, 0, len(c)-len(gone)+len(added))
	gi, ai := 0, 0
	for _, d := range c {
		for ai < len(added) && added[ai].ID < d.ID {
			out = append(out, added[ai])
			ai++
		}
		if gi < len(gone) && gone[gi] == d {
			gi++
			continue
		}
		out = append(out, d)
	}
	return append(out, added[ai:]...)
}
