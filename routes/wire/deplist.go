package wire

import (
	"iter"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/routes"
)

// depList is a Snapshot's deployments: each one's canonical encoding and
// the spec it was encoded from, sorted by ID, in chunks. It is
// persistent: with returns a new list that shares every chunk a change
// does not touch, so a change costs the chunks it touches and the chunk
// index (about √n entries each at n deployments), and a list already
// published is never modified. The zero depList is empty.
type depList struct {
	chunks [][]depEntry // each sorted, not empty; every ID of one below every ID of the next
	n      int
}

type depEntry struct {
	id  string
	enc []byte                 // canonical JSON
	src *routes.DeploymentSpec // what enc was encoded from
}

// Chunk sizes: a chunk that grows past chunkMax is cut into chunks of
// chunkFill entries; one that shrinks below chunkFill/4 is joined to the
// chunk before it when both fit in chunkMax.
const (
	chunkFill = 256
	chunkMax  = 2 * chunkFill
)

func (l *depList) len() int { return l.n }

// chunkOf is the index of the chunk that holds id, or would: the first
// whose last ID is not below id, else the last chunk.
func (l *depList) chunkOf(id string) int {
	i, _ := slices.BinarySearchFunc(l.chunks, id, func(c []depEntry, id string) int {
		return strings.Compare(c[len(c)-1].id, id)
	})
	return min(i, len(l.chunks)-1)
}

// get returns id's entry.
func (l *depList) get(id string) (depEntry, bool) {
	if l.n == 0 {
		return depEntry{}, false
	}
	c := l.chunks[l.chunkOf(id)]
	if j, ok := slices.BinarySearchFunc(c, id, cmpEntry); ok {
		return c[j], true
	}
	return depEntry{}, false
}

func cmpEntry(e depEntry, id string) int { return strings.Compare(e.id, id) }

// all yields every entry in ID order.
func (l *depList) all() iter.Seq[depEntry] {
	return func(yield func(depEntry) bool) {
		for _, c := range l.chunks {
			for _, e := range c {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// edit is one change of a depList: the entry to set, or the ID to remove
// (del).
type edit struct {
	e   depEntry
	del bool
}

// with returns l with the edits made; edits must be sorted by ID, each ID
// at most once. l is not modified.
func (l *depList) with(edits []edit) depList {
	if len(edits) == 0 {
		return *l
	}
	out := depList{chunks: make([][]depEntry, 0, len(l.chunks)+1), n: l.n}
	k := 0 // next edit
	for i := 0; i < len(l.chunks) || (i == 0 && k < len(edits)); i++ {
		var c []depEntry
		if i < len(l.chunks) {
			c = l.chunks[i]
		}
		// The edits of this chunk: up to its last ID, or all that are
		// left for the last chunk.
		end := k
		for end < len(edits) && (i >= len(l.chunks)-1 || edits[end].e.id <= c[len(c)-1].id) {
			end++
		}
		if end == k {
			out.chunks = append(out.chunks, c)
			continue
		}
		merged := make([]depEntry, 0, len(c)+end-k)
		j := 0
		for _, ed := range edits[k:end] {
			for j < len(c) && c[j].id < ed.e.id {
				merged = append(merged, c[j])
				j++
			}
			found := j < len(c) && c[j].id == ed.e.id
			if found {
				j++
			}
			switch {
			case ed.del && found:
				out.n--
			case ed.del:
			case found:
				merged = append(merged, ed.e)
			default:
				merged = append(merged, ed.e)
				out.n++
			}
		}
		merged = append(merged, c[j:]...)
		k = end
		for len(merged) > chunkMax {
			out.chunks = append(out.chunks, merged[:chunkFill:chunkFill])
			merged = merged[chunkFill:]
		}
		if n := len(out.chunks); len(merged) > 0 && len(merged) < chunkFill/4 && n > 0 && len(out.chunks[n-1])+len(merged) <= chunkMax {
			// Removals left a small chunk: join it to the one before,
			// so that the index stays about √n long.
			out.chunks[n-1] = append(slices.Clip(out.chunks[n-1]), merged...)
			continue
		}
		if len(merged) > 0 {
			out.chunks = append(out.chunks, merged)
		}
	}
	return out
}
