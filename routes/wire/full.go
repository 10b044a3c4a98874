package wire

import (
	"encoding/json"
	"io"
	"strconv"
)

// encodeFull writes a full message, byte for byte as json.Marshal writes
// the Message, from deployments already in canonical form (compact, <, >
// and & escaped: EncodeDeployment's output, and what Apply keeps). It
// copies them instead of having json.Marshal scan and compact every one
// again, which cost most of a full table's encoding (about 0.8 s at
// 100 000 deployments, for each snapshot written to disk).
func encodeFull(version uint64, hash string, stale bool, domain string, zones map[string]string, deps func(yield func([]byte) bool)) []byte {
	head := fullHead(version, hash, stale, domain, zones)
	total := len(head) + 2
	for d := range deps {
		total += len(d) + 1
	}
	b := make([]byte, 0, total)
	b = append(b, head...)
	first := true
	for d := range deps {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, d...)
	}
	return append(b, fullTail...)
}

// writeFull writes what encodeFull returns to w, one deployment at a
// time.
func writeFull(w io.Writer, version uint64, hash string, stale bool, domain string, zones map[string]string, deps func(yield func([]byte) bool)) error {
	if _, err := w.Write(fullHead(version, hash, stale, domain, zones)); err != nil {
		return err
	}
	first := true
	for d := range deps {
		if !first {
			if _, err := w.Write([]byte{','}); err != nil {
				return err
			}
		}
		first = false
		if _, err := w.Write(d); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, fullTail)
	return err
}

// fullHead is a full message up to its first deployment; fullTail ends
// it.
func fullHead(version uint64, hash string, stale bool, domain string, zones map[string]string) []byte {
	str := func(s string) []byte { b, _ := json.Marshal(s); return b }
	zs, err := json.Marshal(zones)
	if err != nil {
		panic("wire: encoding zones: " + err.Error()) // strings only: cannot happen
	}
	b := make([]byte, 0, 128+len(hash)+len(domain)+len(zs))
	b = append(b, `{"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"hash":`...)
	b = append(b, str(hash)...)
	b = append(b, `,"full":true,"stale":`...)
	b = strconv.AppendBool(b, stale)
	b = append(b, `,"domain":`...)
	b = append(b, str(domain)...)
	b = append(b, `,"zones":`...)
	b = append(b, zs...)
	return append(b, `,"deployments":[`...)
}

const fullTail = "]}"
