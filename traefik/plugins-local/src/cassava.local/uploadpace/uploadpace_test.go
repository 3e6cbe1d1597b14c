package uploadpace

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// bufferingLike reads the whole body first, as Traefik's buffering middleware does, and
// answers a read error with a plain-text 500 (what this middleware must replace).
func bufferingLike(received *[]byte) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(rw, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		*received = data
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("ok"))
	})
}

func build(t *testing.T, minRate int64, grace string, next http.Handler) http.Handler {
	t.Helper()
	config := CreateConfig()
	config.MinBytesPerSecond = minRate
	config.Grace = grace
	config.TypePrefix = "tag:test:"
	handler, err := New(context.Background(), next, config, "pace")
	if err != nil {
		t.Fatal(err)
	}
	return handler
}

func serve(handler http.Handler, body io.Reader) *httptest.ResponseRecorder {
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, httptest.NewRequest(http.MethodPost, "/predict/image", body))
	return recorder
}

func TestABodyAtAGoodPaceIsPassedOnUnchanged(t *testing.T) {
	var received []byte
	payload := bytes.Repeat([]byte("leaf"), 100000)
	recorder := serve(build(t, 1024, "1s", bufferingLike(&received)), bytes.NewReader(payload))
	if recorder.Code != http.StatusOK || !bytes.Equal(received, payload) {
		t.Fatalf("status %d, %d of %d bytes passed on", recorder.Code, len(received), len(payload))
	}
}

// trickle writes one byte every `every` until stopped.
func trickle(writer *io.PipeWriter, every time.Duration, stop <-chan struct{}) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			_ = writer.Close()
			return
		case <-ticker.C:
			if _, err := writer.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

func assertTooSlow(t *testing.T, recorder *httptest.ResponseRecorder, took, limit time.Duration) {
	t.Helper()
	if recorder.Code != http.StatusRequestTimeout {
		t.Fatalf("status %d (%s), want 408", recorder.Code, recorder.Body.String())
	}
	if recorder.Header().Get("Content-Type") != "application/problem+json" ||
		recorder.Header().Get("Connection") != "close" {
		t.Fatalf("headers %v", recorder.Header())
	}
	var problem map[string]interface{}
	if err := json.Unmarshal(recorder.Body.Bytes(), &problem); err != nil {
		t.Fatalf("body %q: %v", recorder.Body.String(), err)
	}
	if problem["code"] != "upload_too_slow" || problem["type"] != "tag:test:upload_too_slow" ||
		problem["status"] != float64(408) || strings.Contains(recorder.Body.String(), "Internal") {
		t.Fatalf("problem %v", problem)
	}
	if took > limit {
		t.Fatalf("cut after %s, not within %s", took, limit)
	}
}

func TestATricklingBodyIsCutAfterTheGracePeriod(t *testing.T) {
	reader, writer := io.Pipe()
	stop := make(chan struct{})
	defer close(stop)
	go trickle(writer, 20*time.Millisecond, stop) // 50 B/s against a minimum of 1,000
	var received []byte
	started := time.Now()
	recorder := serve(build(t, 1000, "200ms", bufferingLike(&received)), reader)
	assertTooSlow(t, recorder, time.Since(started), 2*time.Second)
	if received != nil {
		t.Fatal("the next handler answered a body it never got")
	}
}

func TestAStalledBodyIsCutOnTimeNotAtItsNextByte(t *testing.T) {
	reader, writer := io.Pipe() // nothing is ever written
	defer writer.Close()
	var received []byte
	started := time.Now()
	recorder := serve(build(t, 1000, "200ms", bufferingLike(&received)), reader)
	assertTooSlow(t, recorder, time.Since(started), 2*time.Second)
}

func TestAFastStartDoesNotBuyAStall(t *testing.T) {
	// 2,000 bytes at once, then nothing: at 1,000 B/s that pace is spent after 2 s.
	reader, writer := io.Pipe()
	go func() { _, _ = writer.Write(make([]byte, 2000)) }()
	defer writer.Close()
	var received []byte
	started := time.Now()
	recorder := serve(build(t, 1000, "100ms", bufferingLike(&received)), reader)
	took := time.Since(started)
	assertTooSlow(t, recorder, took, 4*time.Second)
	if took < 1900*time.Millisecond {
		t.Fatalf("cut after %s, before the pace it had earned ran out", took)
	}
}

func TestRequestsWithoutABodyPassStraightThrough(t *testing.T) {
	called := false
	handler := build(t, 1000, "1s", http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		called = true
		rw.WriteHeader(http.StatusNoContent)
	}))
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, httptest.NewRequest(http.MethodGet, "/", nil))
	if !called || recorder.Code != http.StatusNoContent {
		t.Fatalf("called %v, status %d", called, recorder.Code)
	}
}

func TestBadConfigurationsAreRefused(t *testing.T) {
	for _, config := range []*Config{{MinBytesPerSecond: 0, Grace: "1s"}, {MinBytesPerSecond: 1, Grace: "soon"}} {
		if _, err := New(context.Background(), http.NotFoundHandler(), config, "pace"); err == nil {
			t.Fatalf("accepted %+v", config)
		}
	}
}
