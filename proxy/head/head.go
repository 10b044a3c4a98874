// Package head holds the heads of the HTTP/1.1 messages the proxy
// forwards: the client's request head, which the request path makes the
// instance's, and the instance's response head, which it makes the
// client's.
//
// The request path (package proxy's stages) and the transport to the
// instances (proxy/upstream) see only this package's Request and Response.
// A front end fills a Request from what it parsed and writes a Response in
// its own protocol: the fasthttp server binds the heads it parsed already
// (RequestOf, ResponseOf: no copy), the net/http front end parses one
// (Request.Read) from the request net/http gave it.
//
// The heads are stored in fasthttp's header types, the parser and writer
// of HTTP/1.1 heads the server and the transport use; that is this
// package's business, and replacing it touches this package only. The
// methods are thin and inline, so that the request path stays at zero
// allocations.
package head

import (
	"bufio"
	"iter"

	"github.com/valyala/fasthttp"
)

// Request is an HTTP/1.1 request head: the request line and the header
// fields, without the body. The zero value is an empty head.
type Request fasthttp.RequestHeader

// Response is an HTTP/1.1 response head: the status line and the header
// fields. The zero value is an empty head (status 200).
type Response fasthttp.ResponseHeader

// RequestOf is h as a Request: the same head, not a copy.
func RequestOf(h *fasthttp.RequestHeader) *Request { return (*Request)(h) }

// ResponseOf is h as a Response: the same head, not a copy.
func ResponseOf(h *fasthttp.ResponseHeader) *Response { return (*Response)(h) }

// Fast is r in fasthttp's type, for the front end and the transport that
// speak HTTP/1.1 with fasthttp.
func (r *Request) Fast() *fasthttp.RequestHeader { return (*fasthttp.RequestHeader)(r) }

// Fast is r in fasthttp's type, for the front end and the transport that
// speak HTTP/1.1 with fasthttp.
func (r *Response) Fast() *fasthttp.ResponseHeader { return (*fasthttp.ResponseHeader)(r) }

// Read parses a request head from br, up to and including the blank line
// that ends it.
func (r *Request) Read(br *bufio.Reader) error { return r.Fast().Read(br) }

// Reset empties r.
func (r *Request) Reset() { r.Fast().Reset() }

// Method is the request method as received.
func (r *Request) Method() []byte { return r.Fast().Method() }

// RequestURI is the request target as received.
func (r *Request) RequestURI() []byte { return r.Fast().RequestURI() }

// SetRequestURI sets the request target.
func (r *Request) SetRequestURI(uri string) { r.Fast().SetRequestURI(uri) }

// SetRequestURIBytes sets the request target.
func (r *Request) SetRequestURIBytes(uri []byte) { r.Fast().SetRequestURIBytes(uri) }

// SetMethod sets the request method.
func (r *Request) SetMethod(m string) { r.Fast().SetMethod(m) }

// SetHost sets the Host header.
func (r *Request) SetHost(host string) { r.Fast().SetHost(host) }

// Protocol is the request line's protocol ("HTTP/1.1").
func (r *Request) Protocol() []byte { return r.Fast().Protocol() }

// SetProtocol sets the request line's protocol.
func (r *Request) SetProtocol(p string) { r.Fast().SetProtocol(p) }

// Host is the Host header's value (or the host of an absolute target).
func (r *Request) Host() []byte { return r.Fast().Host() }

// IsGet, IsHead and IsConnect report the method.
func (r *Request) IsGet() bool     { return r.Fast().IsGet() }
func (r *Request) IsHead() bool    { return r.Fast().IsHead() }
func (r *Request) IsConnect() bool { return r.Fast().IsConnect() }

// ContentLength is the body's length: -1 for a chunked body, -2 for a
// request with neither Content-Length nor Transfer-Encoding.
func (r *Request) ContentLength() int { return r.Fast().ContentLength() }

// SetContentLength sets the body's framing: a length, or -1 for chunked.
func (r *Request) SetContentLength(n int) { r.Fast().SetContentLength(n) }

// ConnectionClose reports Connection: close (or HTTP/1.0 without
// keep-alive).
func (r *Request) ConnectionClose() bool { return r.Fast().ConnectionClose() }

// ResetConnectionClose drops Connection: close.
func (r *Request) ResetConnectionClose() { r.Fast().ResetConnectionClose() }

// ConnectionUpgrade reports Connection: upgrade.
func (r *Request) ConnectionUpgrade() bool { return r.Fast().ConnectionUpgrade() }

// RawHeaders is the header block as received, for a pass over the lines as the
// client sent them: spellings, order and repeats that the parsed fields
// fold.
func (r *Request) RawHeaders() []byte { return r.Fast().RawHeaders() }

// Peek is the value of the first field named key (case-insensitive).
func (r *Request) Peek(key string) []byte { return r.Fast().Peek(key) }

// PeekBytes is Peek with the key as bytes.
func (r *Request) PeekBytes(key []byte) []byte { return r.Fast().PeekBytes(key) }

// All yields every field, in order, repeats included.
func (r *Request) All() iter.Seq2[[]byte, []byte] { return r.Fast().All() }

// Set replaces every field named key with one, key's case normalised.
func (r *Request) Set(key, value string) { r.Fast().Set(key, value) }

// SetBytesV is Set with the value as bytes.
func (r *Request) SetBytesV(key string, value []byte) { r.Fast().SetBytesV(key, value) }

// SetCanonical is Set for a key already in canonical case (Foo-Bar), which
// it spares the normalisation.
func (r *Request) SetCanonical(key, value []byte) { r.Fast().SetCanonical(key, value) }

// Del removes every field named key.
func (r *Request) Del(key string) { r.Fast().Del(key) }

// DelBytes is Del with the key as bytes.
func (r *Request) DelBytes(key []byte) { r.Fast().DelBytes(key) }

// SetNoDefaultContentType keeps a head without Content-Type without one.
func (r *Request) SetNoDefaultContentType(v bool) { r.Fast().SetNoDefaultContentType(v) }

// AppendBytes appends the head, as written on the wire, to dst.
func (r *Request) AppendBytes(dst []byte) []byte { return r.Fast().AppendBytes(dst) }

// Write writes the head to w.
func (r *Request) Write(w *bufio.Writer) error { return r.Fast().Write(w) }

// URIPath is the path of a request target, as the proxy compares paths:
// dot segments resolved, slashes merged, escapes decoded. host is the
// request's Host; with it, a target that starts "//" is a path, as the
// fasthttp front end reads it, and not an authority. It is nil when the
// target does not parse.
func URIPath(host, target []byte) []byte {
	var u fasthttp.URI
	if err := u.Parse(host, target); err != nil {
		return nil
	}
	return u.Path()
}

// Read parses a response head from br.
func (r *Response) Read(br *bufio.Reader) error { return r.Fast().Read(br) }

// Reset empties r.
func (r *Response) Reset() { r.Fast().Reset() }

// StatusCode is the status.
func (r *Response) StatusCode() int { return r.Fast().StatusCode() }

// SetStatusCode sets the status.
func (r *Response) SetStatusCode(code int) { r.Fast().SetStatusCode(code) }

// IsHTTP11 reports whether the status line's protocol is HTTP/1.1.
func (r *Response) IsHTTP11() bool { return r.Fast().IsHTTP11() }

// ContentLength is the body's length: -1 for chunked, -2 for a body that
// ends when the connection closes.
func (r *Response) ContentLength() int { return r.Fast().ContentLength() }

// SetContentLength sets the body's framing.
func (r *Response) SetContentLength(n int) { r.Fast().SetContentLength(n) }

// SetContentTypeBytes sets Content-Type.
func (r *Response) SetContentTypeBytes(v []byte) { r.Fast().SetContentTypeBytes(v) }

// ConnectionClose reports Connection: close.
func (r *Response) ConnectionClose() bool { return r.Fast().ConnectionClose() }

// SetConnectionClose sets Connection: close.
func (r *Response) SetConnectionClose() { r.Fast().SetConnectionClose() }

// ResetConnectionClose drops Connection: close.
func (r *Response) ResetConnectionClose() { r.Fast().ResetConnectionClose() }

// Peek is the value of the first field named key (case-insensitive).
func (r *Response) Peek(key string) []byte { return r.Fast().Peek(key) }

// All yields every field, in order, repeats included.
func (r *Response) All() iter.Seq2[[]byte, []byte] { return r.Fast().All() }

// Set replaces every field named key with one, key's case normalised.
func (r *Response) Set(key, value string) { r.Fast().Set(key, value) }

// SetBytesV is Set with the value as bytes.
func (r *Response) SetBytesV(key string, value []byte) { r.Fast().SetBytesV(key, value) }

// SetCanonical is Set for a key already in canonical case.
func (r *Response) SetCanonical(key, value []byte) { r.Fast().SetCanonical(key, value) }

// Del removes every field named key.
func (r *Response) Del(key string) { r.Fast().Del(key) }

// DelBytes is Del with the key as bytes.
func (r *Response) DelBytes(key []byte) { r.Fast().DelBytes(key) }

// SetNoDefaultContentType keeps a head without Content-Type without one.
func (r *Response) SetNoDefaultContentType(v bool) { r.Fast().SetNoDefaultContentType(v) }

// AppendBytes appends the head, as written on the wire, to dst.
func (r *Response) AppendBytes(dst []byte) []byte { return r.Fast().AppendBytes(dst) }
