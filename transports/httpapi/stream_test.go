package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/internal/syncbuf"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/httpx"
)

// TestStreamsSkipTheRouter: a GET of /v1/ws, /v1/sse or /v1/poll reaches
// its transport without the router (no chi route context) but through
// the router's middleware, in its order: the metrics (Report: a reported
// round trip, an error answer counted), the recoverer, the access log,
// nosniff, the origin check, then the query bound (a refused origin is
// refused before its query is read, and its refusal carries nosniff).
// Every other request to those paths (another method, an escaped path)
// gets the router's answer. GrowStack, first of all, only costs: nothing
// here can see it.
func TestStreamsSkipTheRouter(t *testing.T) {
	hub, v, _ := newHub(t, "stream-test-secret-0123456789abcd")
	var logged syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
	do := func(t *testing.T, method, path string, header ...string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
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
			before := hub.Figures()
			code, body, h := do(t, http.MethodGet, path+"?rooms=a", "Origin", "https://chat.example", httpx.HeaderRTT, name+"=40")
			if code != http.StatusOK || body != name {
				t.Fatalf("GET %s: %d %q, want 200 %q (without the router)", path, code, body, name)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Access-Control-Allow-Origin") != "https://chat.example" {
				t.Fatalf("GET %s: headers %v, want nosniff and the allowed origin", path, h)
			}
			if got := hub.Figures().RTTReports; got != before.RTTReports+1 {
				t.Fatalf("GET %s with %s: %d round trips reported, want %d (the metrics middleware)", path, httpx.HeaderRTT, got, before.RTTReports+1)
			}
			if line := "path=" + path + " status=200"; !strings.Contains(logged.String(), line) {
				t.Fatalf("GET %s: no access log line with %q in:\n%s", path, line, logged.String())
			}
			if code, body, _ := do(t, http.MethodGet, path+"?rooms="+long); code != http.StatusBadRequest || !strings.Contains(body, "query string longer") {
				t.Fatalf("GET %s, long query: %d %q, want 400 from the bound", path, code, body)
			}
			code, _, h = do(t, http.MethodGet, path+"?rooms="+long, "Origin", "https://evil.example")
			if code != http.StatusForbidden || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("GET %s from another origin: %d, nosniff %q; want 403 before the query's bound, with nosniff", path, code, h.Get("X-Content-Type-Options"))
			}
			if got := hub.Figures().ErrorsPerMin["forbidden"]; got <= before.ErrorsPerMin["forbidden"] {
				t.Fatalf("GET %s from another origin: forbidden answers a minute %v, was %v: the metrics middleware did not count it", path, got, before.ErrorsPerMin["forbidden"])
			}
			if code, _, _ := do(t, http.MethodGet, path+"?panic=1"); code != http.StatusInternalServerError {
				t.Fatalf("GET %s that panics: %d, want 500 from the recoverer", path, code)
			}
			// The router answers a method it has no route for with
			// bad_request, "method not allowed" (no body for a HEAD).
			if code, _, _ := do(t, http.MethodHead, path); code != http.StatusBadRequest {
				t.Fatalf("HEAD %s: %d, want the router's 400", path, code)
			}
			if code, b, _ := do(t, http.MethodPost, path); code != http.StatusBadRequest || !strings.Contains(b, "method not allowed") {
				t.Fatalf("POST %s: %d %q, want the router's 400 method not allowed", path, code, b)
			}
			escaped := "/v1/%" + hexOf(path[len("/v1/")]) + path[len("/v1/")+1:] // its first letter escaped
			if code, _, _ := do(t, http.MethodGet, escaped); code != http.StatusNotFound {
				t.Fatalf("GET %s: %d, want the router's 404 (it matches the raw path)", escaped, code)
			}
		})
	}
	if code, body, _ := do(t, http.MethodGet, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz: %d %q, want the router's route", code, body)
	}
}

// hexOf is the two hex digits of b, as a percent-escape writes them.
func hexOf(b byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[b>>4], digits[b&15]})
}
