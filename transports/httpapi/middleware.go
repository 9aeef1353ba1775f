package httpapi

import (
	"net/http"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// nosniff tells browsers to trust the Content-Type of every answer: a JSON
// body (which may echo user input) is never sniffed into HTML or script.
func nosniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Content-Type-Options"] = headerNosniff[:1:1] // net/http only reads it; an append copies
		next.ServeHTTP(w, r)
	})
}

// headerNosniff is the value every answer shares, canonical key and all,
// rather than a new slice per request.
var headerNosniff = []string{"nosniff"}

// boundQuery refuses, with bad_request, a request whose raw query string
// is longer than max bytes, before anything parses it (the credential
// lookup included).
func boundQuery(max int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.URL.RawQuery) > max {
				httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "query string longer than %d bytes", max))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// quiet marks the high-volume requests whose success the access log
// writes at debug: long-polls (one per message received, or per hold, for
// every polling user), the chat calls of SSE and poll clients (one per
// message sent, receipt or keystroke burst), and probes and scrapes.
// Stream opens, negotiate, tickets, history and the admin API stay at
// info.
func quiet(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/poll", "/v1/send", "/v1/read", "/v1/typing", "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// requireAdmin lets through identities with admin: true proven by a
// bearer JWT. Any other credential is unauthorized (Require already
// refuses URL credentials; this holds even if the route moves); a
// non-admin JWT is forbidden.
func requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpx.CredentialFrom(r.Context()) != httpx.CredBearer {
			httpx.WriteError(w, protocol.Errorf(protocol.CodeUnauthorized, "the admin API needs Authorization: Bearer with an admin token"))
			return
		}
		if !httpx.IdentityFrom(r.Context()).Admin {
			httpx.WriteError(w, protocol.Errorf(protocol.CodeForbidden, "the admin API needs an admin token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
