// Package multipartlimit is a Traefik middleware plugin (run by Traefik's Yaegi interpreter,
// loaded from ./plugins-local) that caps the number of file parts in a multipart/form-data
// request, so the batch endpoint's photo count is enforced at the proxy as well as by the API.
//
// Why a plugin: no Traefik middleware counts multipart parts. It reads the body that the
// buffering middleware before it has already capped (maxRequestBodyBytes), counts the parts with
// Go's own mime/multipart parser, and hands the same bytes on. A body it cannot parse goes on
// unchanged: the API answers that one (422 malformed_multipart) with its precise message.
package multipartlimit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
)

// Config is the middleware's dynamic configuration.
type Config struct {
	MaxFiles   int    `json:"maxFiles,omitempty"`
	TypePrefix string `json:"typePrefix,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{MaxFiles: 16}
}

type middleware struct {
	next     http.Handler
	maxFiles int
	problem  []byte
}

// New builds the middleware; the problem document is rendered once, here.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if config.MaxFiles < 1 {
		return nil, fmt.Errorf("%s: maxFiles must be at least 1", name)
	}
	body, err := json.Marshal(map[string]interface{}{
		"type":   config.TypePrefix + "too_many_images",
		"title":  "Too many photos in one request",
		"status": http.StatusRequestEntityTooLarge,
		"detail": fmt.Sprintf("The request holds more than %d photos; send at most %d per request.",
			config.MaxFiles, config.MaxFiles),
		"code": "too_many_images",
	})
	if err != nil {
		return nil, err
	}
	return &middleware{next: next, maxFiles: config.MaxFiles, problem: body}, nil
}

func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	mediaType, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" || req.Body == nil {
		m.next.ServeHTTP(rw, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(rw, "Bad Request", http.StatusBadRequest)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if countFiles(body, params["boundary"], m.maxFiles) > m.maxFiles {
		header := rw.Header()
		header.Set("Content-Type", "application/problem+json")
		header.Set("Content-Length", strconv.Itoa(len(m.problem)))
		header.Set("Cache-Control", "no-store")
		rw.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = rw.Write(m.problem)
		return
	}
	m.next.ServeHTTP(rw, req)
}

// countFiles counts the parts with a filename, stopping once past limit or at the first error.
func countFiles(body []byte, boundary string, limit int) int {
	reader := multipart.NewReader(bytes.NewReader(body), boundary)
	files := 0
	for files <= limit {
		part, err := reader.NextPart()
		if err != nil {
			break
		}
		if part.FileName() != "" {
			files++
		}
		_ = part.Close()
	}
	return files
}
