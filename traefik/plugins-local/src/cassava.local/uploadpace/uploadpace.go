// Package uploadpace is a Traefik middleware plugin (run by Traefik's Yaegi interpreter, loaded
// from ./plugins-local) that takes an upload's slot back from a client that sends its body too
// slowly: after a grace period, a body whose average pace falls under minBytesPerSecond is cut
// and answered 408 upload_too_slow (application/problem+json, Connection: close).
//
// Why a plugin: Traefik's only clock on a request body is the entry point's readTimeout (50 s
// for the whole request, sized for honest slow phones), and the buffering middleware reads
// whatever arrives until then. A client that declares a large Content-Length and trickles the
// body (one byte every two seconds) would hold one of the few large-upload slots (inFlightReq)
// for all of it, and again at once (issue 20). No Traefik middleware measures a body's pace.
//
// How: a pump goroutine copies the client's body into a pipe the handler reads; a watchdog closes
// the pipe at the moment the pace falls under the minimum, so a stalled client is cut on time
// too, not at its next byte. The pump itself stays blocked in its read of the client until the
// connection's own readTimeout ends it; the slot (the handler) is released at once. (The data is
// copied by the standard library's io.Copy and io.Pipe, compiled code, not by the interpreter.)
package uploadpace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Config is the middleware's dynamic configuration.
type Config struct {
	// MinBytesPerSecond is the slowest average pace accepted once the grace period is over.
	MinBytesPerSecond int64 `json:"minBytesPerSecond,omitempty"`
	// Grace (a Go duration) is how long a body may arrive at any pace, from its first read.
	Grace      string `json:"grace,omitempty"`
	TypePrefix string `json:"typePrefix,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{MinBytesPerSecond: 32768, Grace: "5s"}
}

type middleware struct {
	next    http.Handler
	minRate int64
	grace   time.Duration
	problem []byte
}

// New builds the middleware; the problem document is rendered once, here.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if config.MinBytesPerSecond < 1 {
		return nil, fmt.Errorf("%s: minBytesPerSecond must be at least 1", name)
	}
	grace, err := time.ParseDuration(config.Grace)
	if err != nil || grace < 0 {
		return nil, fmt.Errorf("%s: grace %q is not a duration", name, config.Grace)
	}
	body, err := json.Marshal(map[string]interface{}{
		"type":   config.TypePrefix + "upload_too_slow",
		"title":  "Upload too slow",
		"status": http.StatusRequestTimeout,
		"detail": fmt.Sprintf("The photo arrived slower than %d bytes per second (after the first %s); "+
			"send it again on a better connection, or send a smaller photo.", config.MinBytesPerSecond, grace),
		"code": "upload_too_slow",
	})
	if err != nil {
		return nil, err
	}
	return &middleware{next: next, minRate: config.MinBytesPerSecond, grace: grace, problem: body}, nil
}

func (m *middleware) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.Body == nil || req.Body == http.NoBody {
		m.next.ServeHTTP(rw, req)
		return
	}
	body := newPacedBody(req.Body, m.minRate, m.grace)
	defer body.stop()
	req.Body = body
	writer := &guardedWriter{ResponseWriter: rw, body: body}
	m.next.ServeHTTP(writer, req)
	if body.tooSlow() && !writer.wroteHeader {
		header := rw.Header()
		header.Set("Content-Type", "application/problem+json")
		header.Set("Content-Length", strconv.Itoa(len(m.problem)))
		header.Set("Cache-Control", "no-store")
		header.Set("Connection", "close")
		rw.WriteHeader(http.StatusRequestTimeout)
		_, _ = rw.Write(m.problem)
	}
}

// errTooSlow is what the handler's read returns once the pace fell under the minimum.
var errTooSlow = errors.New("uploadpace: request body arrived too slowly")

// pacedBody hands on what the pump copies from the client into a pipe; a watchdog closes the
// pipe's reading end (ending the handler's read at once) when the pace falls under the minimum.
type pacedBody struct {
	source  io.ReadCloser
	reader  *io.PipeReader
	writer  *io.PipeWriter
	minRate int64
	grace   time.Duration
	done    chan struct{}

	mu       sync.Mutex
	started  time.Time
	pumping  bool
	stopped  bool
	received int64
	slow     bool
}

func newPacedBody(source io.ReadCloser, minRate int64, grace time.Duration) *pacedBody {
	reader, writer := io.Pipe()
	return &pacedBody{source: source, reader: reader, writer: writer, minRate: minRate,
		grace: grace, done: make(chan struct{})}
}

// pump copies the client's body into the pipe until it ends, fails, or nobody reads any more.
func (b *pacedBody) pump() {
	_, err := io.Copy(b.writer, b.source)
	_ = b.writer.CloseWithError(err) // nil: the reader sees io.EOF
}

// watch ends the body when its pace falls under the minimum, at the moment it does.
func (b *pacedBody) watch() {
	for {
		b.mu.Lock()
		wait := b.behind(time.Now())
		if wait <= 0 {
			b.slow = true
		}
		b.mu.Unlock()
		if wait <= 0 {
			_ = b.reader.CloseWithError(errTooSlow)
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-b.done:
			timer.Stop()
			return
		}
	}
}

// behind is how long until the pace falls under the minimum (<= 0: it has). Under b.mu.
func (b *pacedBody) behind(now time.Time) time.Duration {
	elapsed := now.Sub(b.started)
	if elapsed < b.grace {
		return b.grace - elapsed
	}
	due := time.Duration(float64(b.received) / float64(b.minRate) * float64(time.Second))
	return due - elapsed
}

func (b *pacedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if !b.pumping && !b.stopped {
		b.pumping = true
		b.started = time.Now()
		go b.pump()
		go b.watch()
	}
	b.mu.Unlock()
	n, err := b.reader.Read(p)
	b.mu.Lock()
	b.received += int64(n)
	b.mu.Unlock()
	return n, err
}

func (b *pacedBody) tooSlow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slow
}

// stop ends the watchdog and the pipe; the pump ends with its current read of the client.
func (b *pacedBody) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.stopped {
		b.stopped = true
		close(b.done)
		_ = b.reader.Close()
	}
}

// Close stops the watchdog and the pipe; the server closes the client's body itself.
func (b *pacedBody) Close() error {
	b.stop()
	return nil
}

// guardedWriter drops what the handlers after this one answer once the body was cut (their
// error about a body they could not read); this middleware answers instead.
type guardedWriter struct {
	http.ResponseWriter
	body        *pacedBody
	wroteHeader bool
	dropped     bool
}

func (w *guardedWriter) WriteHeader(status int) {
	if w.wroteHeader || w.dropped {
		return
	}
	if w.body.tooSlow() {
		w.dropped = true
		return
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *guardedWriter) Write(data []byte) (int, error) {
	if !w.wroteHeader && !w.dropped {
		w.WriteHeader(http.StatusOK)
	}
	if w.dropped {
		return len(data), nil
	}
	return w.ResponseWriter.Write(data)
}

// Flush keeps streaming responses streaming.
func (w *guardedWriter) Flush() {
	if w.dropped {
		return
	}
	if flusher, ok := w.ResponseWriter.(http.Flusher); ok {
		flusher.Flush()
	}
}
