package zk

import (
	"fmt"
	"reflect"
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
	req := &multiRequest{
		Ops:        make([]multiRequestOp, 0, len(ops)),
		DoneHeader: multiHeader{Type: -1, Done: true, Err: -1},
	}
	for _, op := range ops {
		if err := validatePath(op.Path, false); err != nil {
			return nil, err
		}
		code := int32(opGetData)
		if op.Children {
			code = opGetChildren
		}
		req.Ops = append(req.Ops, multiRequestOp{multiHeader{code, false, -1}, &pathWatchRequest{Path: op.Path}})
	}
	res := &multiReadResponse{}
	if _, err := c.request(opMultiRead, req, res, nil); err != nil {
		return nil, err
	}
	if len(res.results) != len(ops) {
		return nil, fmt.Errorf("zk: multiRead: %d results for %d reads", len(res.results), len(ops))
	}
	return res.results, nil
}

// multiReadResponse decodes the results of a multiRead.
type multiReadResponse struct {
	results []ReadResult
}

func (r *multiReadResponse) Decode(buf []byte) (int, error) {
	total := 0
	for {
		var header multiHeader
		n, err := decodePacketValue(buf[total:], reflect.ValueOf(&header))
		if err != nil {
			return total, err
		}
		total += n
		if header.Done {
			return total, nil
		}
		var res ReadResult
		var w reflect.Value
		var data getDataResponse
		var children getChildrenResponse
		var code ErrCode
		switch header.Type {
		case opGetData:
			w = reflect.ValueOf(&data)
		case opGetChildren:
			w = reflect.ValueOf(&children)
		case opError:
			w = reflect.ValueOf(&code)
		default:
			return total, ErrAPIError
		}
		n, err = decodePacketValue(buf[total:], w)
		if err != nil {
			return total, err
		}
		total += n
		switch header.Type {
		case opGetData:
			res.Data, res.Stat = data.Data, &data.Stat
		case opGetChildren:
			res.Children = children.Children
		case opError:
			res.Error = code.toError()
		}
		r.results = append(r.results, res)
	}
}
