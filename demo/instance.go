package demo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// instanceHandler is one demo instance. A request without a body gets a JSON
// description of the instance and of the request; a request with a body gets
// the body back, with the request's Content-Type.
type instanceHandler struct {
	deployment, kind, generation, instance, zone string
}

// Reply is the JSON document a demo instance answers a request without a
// body with.
type Reply struct {
	Instance   string `json:"instance"`
	Zone       string `json:"zone"`
	Generation string `json:"generation"`
	Deployment string `json:"deployment"`
	Kind       string `json:"kind"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	Host       string `json:"host"`
	// Headers holds the request headers that a proxy adds or reads
	// (X-Forwarded-*, X-Found-*, X-Cloud-Request-Id), names lowercased.
	Headers map[string]string `json:"headers"`
}

func (h *instanceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Demo-Instance", h.instance)
	w.Header().Set("X-Demo-Deployment", h.deployment)

	// Peek one byte to tell a request with a body from one without.
	var first [1]byte
	n, err := io.ReadFull(r.Body, first[:])
	if n == 0 {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		h.describe(w, r)
		return
	}
	// Echo the body as it arrives. Full duplex: the response starts before
	// the request body ends, so arbitrarily large bodies pass through
	// without being held anywhere.
	_ = http.NewResponseController(w).EnableFullDuplex()
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	if r.ContentLength > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	// A copy error means the client went away or sent a broken body.
	_, _ = io.Copy(w, io.MultiReader(bytes.NewReader(first[:]), r.Body))
}

func (h *instanceHandler) describe(w http.ResponseWriter, r *http.Request) {
	rep := Reply{
		Instance:   h.instance,
		Zone:       h.zone,
		Generation: h.generation,
		Deployment: h.deployment,
		Kind:       h.kind,
		Method:     r.Method,
		Path:       r.URL.RequestURI(),
		Host:       r.Host,
		Headers:    map[string]string{},
	}
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-forwarded-") || strings.HasPrefix(lower, "x-found-") ||
			lower == "x-cloud-request-id" || lower == "forwarded" {
			rep.Headers[lower] = strings.Join(values, ", ")
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// NewInstance is the handler of one instance, as the demo's are and as
// "switchyard instance" serves it: a request without a body gets a JSON
// Reply describing the instance and the request; one with a body gets the
// body back.
func NewInstance(deployment, kind, generation, instance, zone string) http.Handler {
	return &instanceHandler{deployment: deployment, kind: kind, generation: generation, instance: instance, zone: zone}
}
