package zk

import (
	"encoding/binary"
	"fmt"
)

// opMultiRead is ZooKeeper's multiRead (3.6 and later): several reads in
// one request.
const opMultiRead = 22

// ReadOp is one read of a MultiRead: the data and stat of the znode at
// Path, or with Children its children's names (without a stat).
type ReadOp struct {
	Path     string
	Children bool
}

// ReadResult is the result of one ReadOp. Error is set (ErrNoNode, ...)
// when that read failed; the others are not affected.
type ReadResult struct {
	Data     []byte
	Stat     *Stat
	Children []string
	Error    error
}

// MultiRead reads several znodes in one request and one response (the
// server's multiRead, ZooKeeper 3.6 and later). Unlike Multi it is not a
// transaction: each read succeeds or fails on its own, and the server
// runs them in order. No watches are set. The error is the request's
// (connection lost, a server without multiRead); the reads' own errors are
// in the results. Request and response must each fit in the server's
// jute.maxbuffer (1 MiB by default).
func (c *Conn) MultiRead(ops ...ReadOp) ([]ReadResult, error) {
	for _, op := range ops {
		if err := validatePath(op.Path, false); err != nil {
			return nil, err
		}
	}
	res := &multiReadResponse{}
	if _, err := c.request(opMultiRead, &multiReadRequest{ops}, res, nil); err != nil {
		return nil, err
	}
	if len(res.results) != len(ops) {
		return nil, fmt.Errorf("zk: multiRead: %d results for %d reads", len(res.results), len(ops))
	}
	return res.results, nil
}

// multiReadRequest encodes a multiRead: each read's header (type, done,
// err) and its path and watch flag, then the done header. Written out by
// hand: the reflective encoder costs more than the request.
type multiReadRequest struct {
	ops []ReadOp
}

func (r *multiReadRequest) Encode(buf []byte) (int, error) {
	n := 0
	header := func(typ int32, done bool, errCode int32) bool {
		if len(buf)-n < 9 {
			return false
		}
		binary.BigEndian.PutUint32(buf[n:], uint32(typ))
		buf[n+4] = 0
		if done {
			buf[n+4] = 1
		}
		binary.BigEndian.PutUint32(buf[n+5:], uint32(errCode))
		n += 9
		return true
	}
	for _, op := range r.ops {
		typ := int32(opGetData)
		if op.Children {
			typ = opGetChildren
		}
		if !header(typ, false, -1) || len(buf)-n < 5+len(op.Path) {
			return n, ErrShortBuffer
		}
		binary.BigEndian.PutUint32(buf[n:], uint32(len(op.Path)))
		n += 4
		n += copy(buf[n:], op.Path)
		buf[n] = 0 // no watch
		n++
	}
	if !header(-1, true, -1) {
		return n, ErrShortBuffer
	}
	return n, nil
}

// multiReadResponse decodes the results of a multiRead, by hand as
// multiReadRequest is encoded.
type multiReadResponse struct {
	results []ReadResult
}

func (r *multiReadResponse) Decode(buf []byte) (int, error) {
	d := decoder2{buf: buf}
	for {
		typ, done := d.int32(), d.bool()
		d.int32() // the header's err: an error result says it again
		if d.short {
			return d.n, ErrShortBuffer
		}
		if done {
			return d.n, nil
		}
		var res ReadResult
		switch typ {
		case opGetData:
			res.Data = d.bytes()
			res.Stat = d.stat()
		case opGetChildren:
			count := d.int32()
			if count > 0 && !d.short {
				capacity := int(count)
				if capacity > len(buf)/4 {
					capacity = len(buf) / 4 // a count the buffer cannot hold
				}
				res.Children = make([]string, 0, capacity)
				for i := int32(0); i < count && !d.short; i++ {
					res.Children = append(res.Children, d.string())
				}
			}
		case opError:
			res.Error = ErrCode(d.int32()).toError()
		default:
			return d.n, ErrAPIError
		}
		if d.short {
			return d.n, ErrShortBuffer
		}
		r.results = append(r.results, res)
	}
}

// decoder2 reads jute's big-endian encoding from buf; short is set when
// buf ends too early.
type decoder2 struct {
	buf   []byte
	n     int
	short bool
}

func (d *decoder2) take(k int) []byte {
	if d.short || k < 0 || len(d.buf)-d.n < k {
		d.short = true
		return nil
	}
	b := d.buf[d.n : d.n+k]
	d.n += k
	return b
}

func (d *decoder2) bool() bool {
	b := d.take(1)
	return b != nil && b[0] != 0
}

func (d *decoder2) int32() int32 {
	if b := d.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (d *decoder2) int64() int64 {
	if b := d.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// bytes reads a buffer: nil for length -1, as the server writes a znode
// without data.
func (d *decoder2) bytes() []byte {
	ln := d.int32()
	if ln < 0 {
		return nil
	}
	b := d.take(int(ln))
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *decoder2) string() string {
	return string(d.take(int(d.int32())))
}

func (d *decoder2) stat() *Stat {
	return &Stat{
		Czxid: d.int64(), Mzxid: d.int64(), Ctime: d.int64(), Mtime: d.int64(),
		Version: d.int32(), Cversion: d.int32(), Aversion: d.int32(),
		EphemeralOwner: d.int64(), DataLength: d.int32(), NumChildren: d.int32(), Pzxid: d.int64(),
	}
}
