// Package problemdetails is a Traefik middleware plugin (run by Traefik's Yaegi interpreter,
// loaded from ./plugins-local) that turns the proxy's own plain-text error answers into
// RFC 9457 application/problem+json documents with a stable `code`.
//
// It also classifies request bodies the client failed to deliver: Traefik answers a body that
// cannot be read (malformed chunked framing, or cut off by the entry point's readTimeout) with
// a 5xx or its non-standard 499, as if the proxy had failed. This middleware watches the body
// it passes on; when a read of it failed, the error answer becomes 400 (malformed) or 408
// (timed out), the client's fault in standard terms.
//
// Why a plugin: Traefik's `errors` middleware matches on status alone, so it would also replace
// the API's own problem documents that share the status (413 image_too_large, 503
// model_unavailable, 504 model_timeout). Traefik's own errors are text/plain (or untyped); the
// API's are application/problem+json. This middleware rewrites only the former.
package problemdetails

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Problem is the configured document for one status.
type Problem struct {
	Code   string `json:"code,omitempty"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
	// RetryAfter (seconds) is sent as Retry-After when the answer has none.
	RetryAfter string `json:"retryAfter,omitempty"`
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
	next       http.Handler
	bodies     map[int][]byte
	retryAfter map[int]string
}

// New builds the middleware; every problem body is rendered once, here.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	bodies := map[int][]byte{}
	retryAfter := map[int]string{}
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
		if problem.RetryAfter != "" {
			if _, err := strconv.Atoi(problem.RetryAfter); err != nil {
				return nil, fmt.Errorf("%s: retryAfter %q is not a number of seconds", name, problem.RetryAfter)
			}
			retryAfter[status] = problem.RetryAfter
		}
	}
	return &middleware{next: next, bodies: bodies, retryAfter: retryAfter}, nil
}

func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	writer := &problemWriter{ResponseWriter: rw, bodies: m.bodies, retryAfter: m.retryAfter}
	if req.Body != nil && req.Body != http.NoBody {
		writer.body = &watchedBody{ReadCloser: req.Body}
		req.Body = writer.body
	}
	m.next.ServeHTTP(writer, req)
}

// watchedBody remembers the first error (other than the normal end) reading the request body.
type watchedBody struct {
	io.ReadCloser
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// clientStatus is the status for an error answer given while the body could not be read:
// 408 when reading it timed out, 400 when it was malformed or cut short; 0 when it was fine.
func (b *watchedBody) clientStatus() int {
	if b.err == nil {
		return 0
	}
	if errors.Is(b.err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout
	}
	for err := b.err; err != nil; err = errors.Unwrap(err) {
		if timeout, ok := err.(timeoutError); ok && timeout.Timeout() {
			return http.StatusRequestTimeout
		}
	}
	return http.StatusBadRequest
}

// timeoutError is what net errors implement (a read deadline passed).
type timeoutError interface {
	Timeout() bool
}

// problemWriter passes every response through, except a configured error status whose
// Content-Type is plain text or missing: that one gets the problem document instead.
type problemWriter struct {
	http.ResponseWriter
	bodies      map[int][]byte
	retryAfter  map[int]string
	body        *watchedBody
	wroteHeader bool
	replaced    bool
}

func (w *problemWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	clientStatus := 0
	if w.body != nil {
		clientStatus = w.body.clientStatus()
	}
	if clientStatus != 0 && (status >= 500 || status == 499) {
		// The proxy's error about a body the client did not deliver: the client's fault.
		status = clientStatus
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
	}
	if seconds, ok := w.retryAfter[status]; ok && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", seconds)
	}
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
