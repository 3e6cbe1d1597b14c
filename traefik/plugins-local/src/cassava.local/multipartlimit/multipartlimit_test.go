package multipartlimit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
)

func form(t *testing.T, files int, fields int) (*bytes.Buffer, string) {
	t.Helper()
	body := &bytes.Buffer{}
	writer := multipart.NewWriter(body)
	for i := 0; i < files; i++ {
		part, err := writer.CreateFormFile("images", "leaf.jpg")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = part.Write([]byte("jpeg bytes"))
	}
	for i := 0; i < fields; i++ {
		_ = writer.WriteField("note", "not a file")
	}
	_ = writer.Close()
	return body, writer.FormDataContentType()
}

// serve returns the answer and the body the upstream received (nil when it was not called).
func serve(t *testing.T, maxFiles int, body []byte, contentType string) (*httptest.ResponseRecorder, []byte) {
	t.Helper()
	var received []byte
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		received, _ = io.ReadAll(req.Body)
		if received == nil {
			received = []byte{}
		}
		rw.WriteHeader(http.StatusOK)
	})
	config := CreateConfig()
	config.MaxFiles = maxFiles
	config.TypePrefix = "https://example.test/problems/"
	handler, err := New(context.Background(), next, config, "test")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/predict/images", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, req)
	return recorder, received
}

func TestUpToTheLimitPassesWithTheSameBytes(t *testing.T) {
	body, contentType := form(t, 3, 5) // fields without a filename do not count
	sent := body.Bytes()
	recorder, received := serve(t, 3, sent, contentType)
	if recorder.Code != http.StatusOK || !bytes.Equal(received, sent) {
		t.Fatalf("status %d, upstream got %d of %d bytes", recorder.Code, len(received), len(sent))
	}
}

func TestOverTheLimitIsA413ProblemAndTheUpstreamIsNotCalled(t *testing.T) {
	body, contentType := form(t, 4, 0)
	recorder, received := serve(t, 3, body.Bytes(), contentType)
	if recorder.Code != http.StatusRequestEntityTooLarge || received != nil {
		t.Fatalf("status %d, upstream called: %v", recorder.Code, received != nil)
	}
	if recorder.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("content type %q", recorder.Header().Get("Content-Type"))
	}
	var problem map[string]interface{}
	if err := json.Unmarshal(recorder.Body.Bytes(), &problem); err != nil {
		t.Fatal(err)
	}
	if problem["code"] != "too_many_images" || problem["status"] != float64(413) ||
		problem["type"] != "https://example.test/problems/too_many_images" {
		t.Fatalf("problem %v", problem)
	}
}

func TestWhatItCannotParseGoesOnUnchanged(t *testing.T) {
	cases := map[string][2]string{
		"not multipart":  {"{}", "application/json"},
		"no boundary":    {"--x\r\n", "multipart/form-data"},
		"broken framing": {"--x\r\nContent-Disposition: form-data; name=\"a\"; filename=\"b\"\r\n", "multipart/form-data; boundary=x"},
	}
	for name, c := range cases {
		recorder, received := serve(t, 1, []byte(c[0]), c[1])
		if recorder.Code != http.StatusOK || string(received) != c[0] {
			t.Errorf("%s: status %d, upstream got %q", name, recorder.Code, received)
		}
	}
}

func TestAMaxFilesBelowOneIsRefused(t *testing.T) {
	config := CreateConfig()
	config.MaxFiles = 0
	if _, err := New(context.Background(), http.NotFoundHandler(), config, "test"); err == nil {
		t.Fatal("maxFiles 0 was accepted")
	}
}
