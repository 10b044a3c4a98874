package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"
)

// HashScheme is how a route server hashes its tables. Receivers check
// either: the hash says which it is.
type HashScheme uint8

const (
	// HashSHA256 is a SHA-256 over the whole canonical table (hex), as
	// every version has sent: each new table re-hashes every deployment.
	HashSHA256 HashScheme = iota
	// HashSum is "sum:" and a SHA-256 (hex) over the domain, the zones
	// and the sum, modulo 2^256, of each deployment's SHA-256 (of its
	// canonical encoding). A change adds and subtracts the hashes of the
	// deployments it touches, so a table's hash costs what changed. The
	// sum detects a table that differs by accident (a delta applied to
	// the wrong base, a lost or extra deployment), which is its purpose;
	// it is not meant to resist a forger, who could also forge SHA-256
	// hashes the route server sends over plain HTTP.
	HashSum
)

// ParseHashScheme reads a scheme's name: "sha256" or "sum".
func ParseHashScheme(s string) (HashScheme, error) {
	switch s {
	case "sha256":
		return HashSHA256, nil
	case "sum":
		return HashSum, nil
	}
	return 0, fmt.Errorf("wire: table hash %q: want sha256 or sum", s)
}

func (h HashScheme) String() string {
	if h == HashSum {
		return "sum"
	}
	return "sha256"
}

const sumPrefix = "sum:"

// isSumHash reports whether a table hash is of the HashSum scheme.
func isSumHash(h string) bool { return strings.HasPrefix(h, sumPrefix) }

// digestSum is a 256-bit number, most significant word first: the sum of
// the SHA-256 hashes of a table's deployments.
type digestSum [4]uint64

func digestOf(b []byte) digestSum {
	h := sha256.Sum256(b)
	var d digestSum
	for i := range d {
		d[i] = binary.BigEndian.Uint64(h[i*8:])
	}
	return d
}

// add adds the hash of enc to a.
func (a *digestSum) add(enc []byte) {
	d := digestOf(enc)
	var c uint64
	for i := 3; i >= 0; i-- {
		a[i], c = bits.Add64(a[i], d[i], c)
	}
}

// sub subtracts the hash of enc from a.
func (a *digestSum) sub(enc []byte) {
	d := digestOf(enc)
	var b uint64
	for i := 3; i >= 0; i-- {
		a[i], b = bits.Sub64(a[i], d[i], b)
	}
}

// addDigest adds a deployment's hash d to a.
func (a *digestSum) addDigest(d digestSum) {
	var c uint64
	for i := 3; i >= 0; i-- {
		a[i], c = bits.Add64(a[i], d[i], c)
	}
}

// subDigest subtracts a deployment's hash d from a.
func (a *digestSum) subDigest(d digestSum) {
	var b uint64
	for i := 3; i >= 0; i-- {
		a[i], b = bits.Sub64(a[i], d[i], b)
	}
}

// sumHash is the HashSum hash of a table with this domain, zones and sum.
func sumHash(domain string, zones map[string]string, sum digestSum) string {
	h := sha256.New()
	h.Write([]byte("switchyard table sum 1\ndomain " + domain + "\n"))
	writeZones(h, zones)
	var b [32]byte
	for i, w := range sum {
		binary.BigEndian.PutUint64(b[i*8:], w)
	}
	h.Write(b[:])
	return sumPrefix + hex.EncodeToString(h.Sum(nil))
}
