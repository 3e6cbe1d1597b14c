// Package problemdetails is a Traefik middleware plugin (run by Traefik's Yaegi interpreter,
// loaded from ./plugins-local) that turns the proxy's own plain-text error answers into
// RFC 9457 application/problem+json documents with a stable `code`.
//
// Why a plugin: Traefik's `errors` middleware matches on status alone, so it would also replace
// the API's own problem documents that share the status (413 image_too_large, 503
// model_unavailable, 504 model_timeout). Traefik's own errors are text/plain (or untyped); the
// API's are application/problem+json. This middleware rewrites only the former.
package problemdetails

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Problem is the configured document for one status.
type Problem struct {
	Code   string `json:"code,omitempty"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Config is the middleware's dynamic configuration: status (as a string key) -> problem.
type Config struct {
	TypePrefix string             `json:"typePrefix,omitempty"`
	Problems   map[string]Problem `json:"problems,omitempty"`
}

// CreateConfig returns the default (empty) configuration.
func CreateConfig() *Config {
	return &Config{Problems: map[string]Problem{}}
}

type middleware struct {
	next   http.Handler
	bodies map[int][]byte
}

// New builds the middleware; every problem body is rendered once, here.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	bodies := map[int][]byte{}
	for key, problem := range config.Problems {
		status, err := strconv.Atoi(key)
		if err != nil || status < 400 || status > 599 {
			return nil, fmt.Errorf("%s: problems key %q is not an HTTP error status", name, key)
		}
		if problem.Code == "" {
			return nil, fmt.Errorf("%s: problem for status %d has no code", name, status)
		}
		title := problem.Title
		if title == "" {
			title = http.StatusText(status)
		}
		body, err := json.Marshal(map[string]interface{}{
			"type":   config.TypePrefix + problem.Code,
			"title":  title,
			"status": status,
			"detail": problem.Detail,
			"code":   problem.Code,
		})
		if err != nil {
			return nil, err
		}
		bodies[status] = body
	}
	return &middleware{next: next, bodies: bodies}, nil
}

func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	m.next.ServeHTTP(&problemWriter{ResponseWriter: rw, bodies: m.bodies}, req)
}

// problemWriter passes every response through, except a configured error status whose
// Content-Type is plain text or missing: that one gets the problem document instead.
type problemWriter struct {
	http.ResponseWriter
	bodies      map[int][]byte
	wroteHeader bool
	replaced    bool
}

func (w *problemWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	body, configured := w.bodies[status]
	contentType := w.Header().Get("Content-Type")
	if !configured || (contentType != "" && !strings.HasPrefix(contentType, "text/plain")) {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	header := w.Header()
	header.Set("Content-Type", "application/problem+json")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Cache-Control", "no-store")
	w.ResponseWriter.WriteHeader(status)
	_, _ = w.ResponseWriter.Write(body)
}

func (w *problemWriter) Write(data []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(data), nil // the proxy's plain-text body is dropped
	}
	return w.ResponseWriter.Write(data)
}

// Flush keeps streaming responses streaming.
func (w *problemWriter) Flush() {
	if w.replaced {
		return
	}
	if flusher, ok := w.ResponseWriter.(http.Flusher); ok {
		flusher.Flush()
	}
}
