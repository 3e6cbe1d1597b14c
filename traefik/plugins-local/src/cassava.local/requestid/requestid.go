// Package requestid is a Traefik middleware plugin (run by Traefik's Yaegi interpreter, loaded
// from ./plugins-local) that gives every request one X-Request-ID, end to end: a sane id from
// the client is kept, anything else (missing, too long, odd characters, repeated) is replaced by
// 32 random hex digits. The id goes upstream with the request (the API reuses it and passes it
// to the model server as gRPC metadata), into Traefik's access log, and back to the client.
//
// Why a plugin: Traefik v3 has no middleware that generates request ids; `headers` can only set
// fixed values.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
)

// Config is the middleware's dynamic configuration.
type Config struct {
	HeaderName string `json:"headerName,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{HeaderName: "X-Request-ID"}
}

// The API accepts the same characters and length (api.service/app/core/request_id.py).
var sane = regexp.MustCompile(`^[A-Za-z0-9._:@/+=-]{1,128}$`)

type middleware struct {
	next   http.Handler
	header string
}

// New builds the middleware.
func New(_ context.Context, next http.Handler, config *Config, _ string) (http.Handler, error) {
	header := config.HeaderName
	if header == "" {
		header = "X-Request-ID"
	}
	return &middleware{next: next, header: http.CanonicalHeaderKey(header)}, nil
}

func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	values := req.Header.Values(m.header)
	id := ""
	if len(values) == 1 && sane.MatchString(values[0]) {
		id = values[0]
	} else {
		id = newID()
	}
	req.Header.Set(m.header, id)
	m.next.ServeHTTP(&idWriter{ResponseWriter: rw, header: m.header, id: id}, req)
}

func newID() string {
	buffer := make([]byte, 16)
	if _, err := rand.Read(buffer); err != nil {
		panic(err) // the kernel's random source failing is not something to serve through
	}
	return hex.EncodeToString(buffer)
}

// idWriter adds the id to the answer when the upstream (or Traefik itself) did not set one, so
// the header is never doubled.
type idWriter struct {
	http.ResponseWriter
	header      string
	id          string
	wroteHeader bool
}

func (w *idWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.Header().Get(w.header) == "" {
		w.Header().Set(w.header, w.id)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *idWriter) Write(data []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(data)
}

// Flush keeps streaming responses streaming.
func (w *idWriter) Flush() {
	if flusher, ok := w.ResponseWriter.(http.Flusher); ok {
		flusher.Flush()
	}
}
