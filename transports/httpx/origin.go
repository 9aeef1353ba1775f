package httpx

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// Origins decides which browser origins may call the server. Requests
// without an Origin header (non-browser clients) are allowed; a browser
// Origin must be same-origin or on the allow-list. Static after
// construction.
type Origins struct {
	allowed map[string]bool // normalised "scheme://host[:port]"
	any     bool            // "*" was listed
}

// NewOrigins parses a comma-separated allow-list.
func NewOrigins(list string) *Origins {
	o := &Origins{allowed: make(map[string]bool)}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == "*":
			o.any = true
		default:
			o.allowed[strings.ToLower(strings.TrimSuffix(s, "/"))] = true
		}
	}
	return o
}

// Allowed reports whether r's origin may use the server.
func (o *Origins) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return o.any || o.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// Middleware rejects disallowed origins with forbidden, and answers CORS
// for allowed cross-origin callers, preflights included.
func (o *Origins) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.Allowed(r) {
			WriteError(w, protocol.Errorf(protocol.CodeForbidden, "origin not allowed"))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, "+HeaderRTT+", "+HeaderClient)
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
