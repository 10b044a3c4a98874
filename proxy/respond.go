package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/switchyard/switchyard/proxy/upstream"
)

// reason says why a request ended the way it did; it is the access log's
// status_reason and picks the proxy's own response.
type reason uint8

const (
	reasonNone             reason = iota // proxied response
	reasonHealth                         // /_health answered by the proxy
	reasonUnknownResource                // no key, or key not in the table
	reasonUnavailable                    // no instance can take the request
	reasonNoTable                        // no route table loaded yet
	reasonUpstreamRefused                // connect refused
	reasonUpstreamReset                  // reset / closed before headers
	reasonUpstreamBad                    // malformed response
	reasonUpstreamTimeout                // connect or header timeout
	reasonBodyTooLarge                   // request body over the limit
	reasonHeaderTooLarge                 // request headers over the limit
	reasonBadRequest                     // malformed or ambiguous request
	reasonClientClosed                   // client went away first
	reasonClientTimeout                  // client too slow sending the request
	reasonUpstreamBody                   // instance failed mid-body
	reasonForbidden                      // client outside the traffic filter
	reasonMethodNotAllowed               // CONNECT: the proxy opens no tunnels
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:             "",
	reasonHealth:           "health",
	reasonUnknownResource:  "unknown_resource",
	reasonUnavailable:      "unavailable",
	reasonNoTable:          "no_route_table",
	reasonUpstreamRefused:  "upstream_refused",
	reasonUpstreamReset:    "upstream_reset",
	reasonUpstreamBad:      "upstream_malformed",
	reasonUpstreamTimeout:  "upstream_timeout",
	reasonBodyTooLarge:     "body_too_large",
	reasonHeaderTooLarge:   "header_too_large",
	reasonBadRequest:       "bad_request",
	reasonClientClosed:     "client_closed",
	reasonClientTimeout:    "client_timeout",
	reasonUpstreamBody:     "upstream_body",
	reasonForbidden:        "forbidden",
	reasonMethodNotAllowed: "method_not_allowed",
}

func (r reason) String() string { return reasonNames[r] }

// ownResponse is a response the proxy writes itself.
type ownResponse struct {
	status int
	body   []byte
}

func jsonBody(msg string) []byte {
	return []byte(`{"ok":false,"message":"` + msg + `"}`)
}

// The bodies of docs/reference.md's table of the proxy's own responses.
var ownResponses = [numReasons]ownResponse{
	reasonUnknownResource:  {http.StatusNotFound, jsonBody("Unknown resource.")},
	reasonForbidden:        {http.StatusForbidden, jsonBody("Forbidden")},
	reasonUnavailable:      {http.StatusServiceUnavailable, jsonBody("The requested resource is currently unavailable.")},
	reasonNoTable:          {http.StatusServiceUnavailable, jsonBody("The requested resource is currently unavailable.")},
	reasonUpstreamRefused:  {http.StatusBadGateway, jsonBody("The requested resource could not be reached.")},
	reasonUpstreamReset:    {http.StatusBadGateway, jsonBody("The requested resource closed the connection.")},
	reasonUpstreamBad:      {http.StatusBadGateway, jsonBody("The requested resource sent an invalid response.")},
	reasonUpstreamTimeout:  {http.StatusGatewayTimeout, jsonBody("The requested resource did not respond in time.")},
	reasonBodyTooLarge:     {http.StatusRequestEntityTooLarge, jsonBody("Request body too large.")},
	reasonHeaderTooLarge:   {http.StatusRequestHeaderFieldsTooLarge, jsonBody("Request header fields too large.")},
	reasonBadRequest:       {http.StatusBadRequest, jsonBody("Bad request.")},
	reasonMethodNotAllowed: {http.StatusMethodNotAllowed, jsonBody("Method not allowed.")},
	reasonClientTimeout:    {http.StatusRequestTimeout, jsonBody("Request timeout.")},
	// Written to a client that is gone; logged as 499.
	reasonClientClosed: {499, jsonBody("Client closed request.")},
}

var (
	strContentTypeJSON = []byte("application/json")
	healthOK           = []byte(`{"ok":true,"status":200}`)
	healthDown         = []byte(`{"ok":false,"status":502}`)
)

// errBodyTooLarge is returned by the client body reader past MaxBodyBytes.
var errBodyTooLarge = errors.New("proxy: request body too large")

// classify maps a failed exchange to a reason. This is the one place where
// upstream failures become status codes:
// connect refused, reset, malformed → 502; timeouts → 504; no connection
// slot → 503; the client's own failures → 413, 408 or 499.
func classify(err error) reason {
	ue, ok := upstream.AsError(err)
	if !ok {
		return reasonUpstreamReset
	}
	switch ue.Kind {
	case upstream.KindConnectRefused:
		return reasonUpstreamRefused
	case upstream.KindConnectTimeout, upstream.KindTimeout:
		return reasonUpstreamTimeout
	case upstream.KindPoolTimeout:
		return reasonUnavailable
	case upstream.KindMalformed:
		return reasonUpstreamBad
	case upstream.KindClientBody:
		var ne net.Error
		switch {
		case errors.Is(ue.Err, errBodyTooLarge):
			return reasonBodyTooLarge
		case errors.As(ue.Err, &ne) && ne.Timeout():
			return reasonClientTimeout
		case errors.Is(ue.Err, context.Canceled), errors.Is(ue.Err, io.EOF), errors.Is(ue.Err, io.ErrUnexpectedEOF),
			errors.Is(ue.Err, net.ErrClosed), isConnReset(ue.Err):
			return reasonClientClosed
		}
		// Broken chunked framing or another malformed body.
		return reasonBadRequest
	}
	return reasonUpstreamReset
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
