package requestid

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var generated = regexp.MustCompile(`^[0-9a-f]{32}$`)

// serve runs one request through the middleware; upstream records the id it received.
func serve(t *testing.T, ids []string, upstreamSets string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	var received string
	next := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		received = req.Header.Get("X-Request-ID")
		if upstreamSets != "" {
			rw.Header().Set("X-Request-ID", upstreamSets)
		}
		_, _ = rw.Write([]byte("ok"))
	})
	handler, err := New(context.Background(), next, CreateConfig(), "test")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, id := range ids {
		req.Header.Add("X-Request-ID", id)
	}
	recorder := httptest.NewRecorder()
	handler.ServeHTTP(recorder, req)
	return recorder, received
}

func TestASaneIdIsKeptEndToEnd(t *testing.T) {
	recorder, received := serve(t, []string{"client-42.a:b@c/d+e=f"}, "")
	if received != "client-42.a:b@c/d+e=f" || recorder.Header().Get("X-Request-ID") != received {
		t.Fatalf("upstream got %q, client got %q", received, recorder.Header().Get("X-Request-ID"))
	}
}

func TestAnythingElseIsReplacedByARandomId(t *testing.T) {
	cases := map[string][]string{
		"missing":    nil,
		"too long":   {strings.Repeat("a", 129)},
		"odd":        {"<script>"},
		"empty":      {""},
		"repeated":   {"a", "b"},
		"with space": {"a b"},
	}
	for name, ids := range cases {
		recorder, received := serve(t, ids, "")
		if !generated.MatchString(received) {
			t.Errorf("%s: upstream got %q", name, received)
		}
		if got := recorder.Header().Values("X-Request-ID"); len(got) != 1 || got[0] != received {
			t.Errorf("%s: client got %q, upstream %q", name, got, received)
		}
	}
	_, first := serve(t, nil, "")
	_, second := serve(t, nil, "")
	if first == second {
		t.Fatalf("two requests got the same id %q", first)
	}
}

func TestTheUpstreamsIdIsNotDoubled(t *testing.T) {
	recorder, _ := serve(t, []string{"from-client"}, "from-upstream")
	if got := recorder.Header().Values("X-Request-ID"); len(got) != 1 || got[0] != "from-upstream" {
		t.Fatalf("client got %q", got)
	}
}
