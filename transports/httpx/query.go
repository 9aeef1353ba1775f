package httpx

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// QueryValue returns the first value of key in a raw query, unescaped,
// without parsing the rest of it (a poll's query holds a long cursor).
func QueryValue(raw, key string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			continue
		}
		if u, err := url.QueryUnescape(v); err == nil {
			return u
		}
		return ""
	}
	return ""
}

// Batched reports whether a stream or poll request says, with batch=1,
// that its client reads batched receipt and presence envelopes.
func Batched(r *http.Request) bool { return QueryValue(r.URL.RawQuery, protocol.BatchParam) == "1" }
