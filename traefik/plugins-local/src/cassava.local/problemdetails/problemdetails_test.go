package problemdetails

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func config() *Config {
	c := CreateConfig()
	c.TypePrefix = "https://example.test/problems/"
	c.Problems["429"] = Problem{Code: "rate_limited", Detail: "Slow down.", RetryAfter: "2"}
	c.Problems["503"] = Problem{Code: "upstream_unavailable", Title: "Try again"}
	return c
}

func serve(t *testing.T, c *Config, upstream http.HandlerFunc, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	handler, err := New(context.Background(), upstream, c, "test")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/predict/image", body)
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, req)
	return recorder
}

func plain(status int) http.HandlerFunc {
	return func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.WriteHeader(status)
		_, _ = rw.Write([]byte(http.StatusText(status) + "\n"))
	}
}

func TestTheProxysPlainTextErrorBecomesAProblem(t *testing.T) {
	recorder := serve(t, config(), plain(http.StatusTooManyRequests), nil)
	if recorder.Code != 429 || recorder.Header().Get("Content-Type") != "application/problem+json" ||
		recorder.Header().Get("Retry-After") != "2" {
		t.Fatalf("%d %v", recorder.Code, recorder.Header())
	}
	var problem map[string]interface{}
	if err := json.Unmarshal(recorder.Body.Bytes(), &problem); err != nil {
		t.Fatalf("%v: %q", err, recorder.Body.String())
	}
	want := map[string]interface{}{"type": "https://example.test/problems/rate_limited",
		"title": "Too Many Requests", "status": float64(429), "detail": "Slow down.", "code": "rate_limited"}
	for key, value := range want {
		if problem[key] != value {
			t.Errorf("%s: %v, want %v", key, problem[key], value)
		}
	}
}

func TestTheApisOwnProblemIsLeftAlone(t *testing.T) {
	own := `{"code":"model_unavailable"}`
	recorder := serve(t, config(), func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = rw.Write([]byte(own))
	}, nil)
	if recorder.Code != 503 || recorder.Body.String() != own {
		t.Fatalf("%d %q", recorder.Code, recorder.Body.String())
	}
}

func TestAnUnconfiguredStatusPassesThrough(t *testing.T) {
	recorder := serve(t, config(), plain(http.StatusBadGateway), nil)
	if recorder.Code != 502 || recorder.Body.String() != "Bad Gateway\n" {
		t.Fatalf("%d %q", recorder.Code, recorder.Body.String())
	}
}

type failingBody struct{ err error }

func (b failingBody) Read([]byte) (int, error) { return 0, b.err }

func TestABodyTheClientFailedToDeliverIsTheClientsFault(t *testing.T) {
	cases := map[string]struct {
		err    error
		status int
	}{
		"timed out": {os.ErrDeadlineExceeded, http.StatusRequestTimeout},
		"malformed": {errors.New("invalid chunked encoding"), http.StatusBadRequest},
	}
	for name, c := range cases {
		recorder := serve(t, config(), func(rw http.ResponseWriter, req *http.Request) {
			_, _ = io.ReadAll(req.Body)
			plain(http.StatusBadGateway)(rw, req)
		}, failingBody{c.err})
		if recorder.Code != c.status || recorder.Header().Get("Connection") != "close" {
			t.Errorf("%s: %d %v", name, recorder.Code, recorder.Header())
		}
	}
}

func TestAConfigThatCannotWorkIsRefused(t *testing.T) {
	for name, problems := range map[string]map[string]Problem{
		"not a status":     {"abc": {Code: "x"}},
		"not an error":     {"200": {Code: "x"}},
		"no code":          {"429": {}},
		"retryAfter words": {"429": {Code: "x", RetryAfter: "soon"}},
	} {
		c := CreateConfig()
		c.Problems = problems
		if _, err := New(context.Background(), http.NotFoundHandler(), c, "test"); err == nil ||
			!strings.Contains(err.Error(), "test:") {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}
