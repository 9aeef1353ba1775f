package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/httpx"
)

// TestStreamsSkipTheRouter: a GET of /v1/ws, /v1/sse or /v1/poll reaches
// its transport without the router (no chi route context) but through
// the router's middleware, in its order: the query bound, nosniff, the
// origin check, the recoverer. Every other request to those paths (another
// method, an escaped path) gets the router's answer.
func TestStreamsSkipTheRouter(t *testing.T) {
	hub, v, log := newHub(t, "stream-test-secret-0123456789abcd")
	transport := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("panic") != "" {
				panic("transport " + name)
			}
			if chi.RouteContext(r.Context()) != nil {
				name += " via the router"
			}
			io.WriteString(w, name)
		})
	}
	api := httpapi.New(httpapi.Config{Hub: hub, Verifier: v, Tickets: auth.NewTickets(nil, time.Minute, nil),
		Logger: log, Origins: httpx.NewOrigins("https://chat.example"),
		Transports: map[string]http.Handler{"websocket": transport("websocket"), "sse": transport("sse"), "poll": transport("poll")}})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	do := func(method, path, origin string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	long := strings.Repeat("r", httpx.MaxStreamQuery(hub.Config().MaxRoomsPerSession)+1)
	for name, path := range map[string]string{"websocket": "/v1/ws", "sse": "/v1/sse", "poll": "/v1/poll"} {
		t.Run(name, func(t *testing.T) {
			code, body, h := do(http.MethodGet, path+"?rooms=a", "https://chat.example")
			if code != http.StatusOK || body != name {
				t.Fatalf("GET %s: %d %q, want 200 %q (without the router)", path, code, body, name)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Access-Control-Allow-Origin") != "https://chat.example" {
				t.Fatalf("GET %s: headers %v, want nosniff and the allowed origin", path, h)
			}
			if code, body, _ := do(http.MethodGet, path+"?rooms="+long, ""); code != http.StatusBadRequest || !strings.Contains(body, "query string longer") {
				t.Fatalf("GET %s, long query: %d %q, want 400 from the bound", path, code, body)
			}
			if code, _, _ := do(http.MethodGet, path, "https://evil.example"); code != http.StatusForbidden {
				t.Fatalf("GET %s from another origin: %d, want 403", path, code)
			}
			if code, _, _ := do(http.MethodGet, path+"?panic=1", ""); code != http.StatusInternalServerError {
				t.Fatalf("GET %s that panics: %d, want 500 from the recoverer", path, code)
			}
			// The router answers a method it has no route for with
			// bad_request, "method not allowed" (no body for a HEAD).
			if code, _, _ := do(http.MethodHead, path, ""); code != http.StatusBadRequest {
				t.Fatalf("HEAD %s: %d, want the router's 400", path, code)
			}
			if code, b, _ := do(http.MethodPost, path, ""); code != http.StatusBadRequest || !strings.Contains(b, "method not allowed") {
				t.Fatalf("POST %s: %d %q, want the router's 400 method not allowed", path, code, b)
			}
			escaped := "/v1/%" + hexOf(path[len("/v1/")]) + path[len("/v1/")+1:] // its first letter escaped
			if code, _, _ := do(http.MethodGet, escaped, ""); code != http.StatusNotFound {
				t.Fatalf("GET %s: %d, want the router's 404 (it matches the raw path)", escaped, code)
			}
		})
	}
	if code, body, _ := do(http.MethodGet, "/healthz", ""); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz: %d %q, want the router's route", code, body)
	}
}

// hexOf is the two hex digits of b, as a percent-escape writes them.
func hexOf(b byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[b>>4], digits[b&15]})
}
