package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// requestIDs makes X-Cloud-Request-Id values: 32 hex digits, a random
// per-process prefix then a counter, unique without coordination.
type requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

const requestIDLen = 32

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &requestIDs{}
	hex.Encode(r.prefix[:], b[:])
	return r
}

// next writes a new ID into dst.
func (r *requestIDs) next(dst *[requestIDLen]byte) []byte {
	const digits = "0123456789abcdef"
	copy(dst[:16], r.prefix[:])
	n := r.n.Add(1)
	for i := requestIDLen - 1; i >= 16; i-- {
		dst[i] = digits[n&0xf]
		n >>= 4
	}
	return dst[:]
}
