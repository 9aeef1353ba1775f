package httpx

import (
	"net/http"
	"net/url"
	"strings"
)

// Repeat is what a client's next request says if it is the request
// before it again but for one query parameter's value: a poll client's
// next poll is its last one with the cursor of the answer it got. A
// handler that keeps a Repeat (ExpectRepeat) knows a request that
// matches it (Matches) without reading its query or its credential
// again: the query is the same bytes but for that value, and the
// credential headers are the same.
type Repeat struct {
	pre, suf string // the raw query before and after the value
	value    string // the value expected, as it is in the raw query
	authz    string // the Authorization header
	client   string // the HeaderClient header
}

// ExpectRepeat returns the Repeat of r with value as the value of the
// query parameter name, which r's query must have: its first pair of
// that name as queryParams reads it, neither of them escaped. It reports
// false, and nothing can match, when r's query has no such pair, the
// pair is escaped, value is not a string of unreserved characters (which
// a client sends as they are), or r has a Last-Event-ID header (a stream
// resumed by a header, which a Repeat does not compare).
func ExpectRepeat(r *http.Request, name, value string) (Repeat, bool) {
	if !unreserved(value) || r.Header.Get(lastEventID) != "" {
		return Repeat{}, false
	}
	start, end, ok := paramSpan(r.URL.RawQuery, name)
	if !ok {
		return Repeat{}, false
	}
	raw := r.URL.RawQuery
	return Repeat{
		pre: raw[:start], suf: raw[end:], value: value,
		authz: r.Header.Get("Authorization"), client: r.Header.Get(HeaderClient),
	}, true
}

// Next returns the Repeat of the request x matched with value as the
// value instead of x's: the same query and headers but for it.
func (x Repeat) Next(value string) (Repeat, bool) {
	if !unreserved(value) {
		return Repeat{}, false
	}
	x.value = value
	return x, true
}

// Matches reports whether r is the request x expects: the same raw
// query but for the value, which is x's, the same Authorization and
// HeaderClient headers, and no Last-Event-ID. A zero Repeat matches
// nothing.
func (x *Repeat) Matches(r *http.Request) bool {
	q := r.URL.RawQuery
	if x.value == "" || len(q) != len(x.pre)+len(x.value)+len(x.suf) ||
		q[:len(x.pre)] != x.pre || q[len(x.pre):len(x.pre)+len(x.value)] != x.value || q[len(x.pre)+len(x.value):] != x.suf {
		return false
	}
	// By their canonical keys, as a parsed head has them: Get would
	// check each key's form first.
	return canonicalValue(r.Header, "Authorization") == x.authz && canonicalValue(r.Header, HeaderClient) == x.client &&
		canonicalValue(r.Header, lastEventID) == ""
}

// canonicalValue is h.Get(key) for a key already in canonical form.
func canonicalValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// paramSpan returns where the value of the pair queryParams would take
// for name lies in raw, raw[start:end], and false if there is none or
// that pair's name or value is escaped.
func paramSpan(raw, name string) (start, end int, ok bool) {
	at := 0
	for at < len(raw) {
		kv, _, _ := strings.Cut(raw[at:], "&")
		pairAt := at
		at += len(kv) + 1
		if kv == "" || strings.Contains(kv, ";") {
			continue
		}
		k, v, hasValue := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			// An escaped name that unescapes to name may be the pair
			// queryParams reads, as an escaped pair: no span of ours.
			if k, err := url.QueryUnescape(k); err == nil && k == name {
				return 0, 0, false
			}
			continue
		}
		if k != name {
			continue
		}
		if !hasValue || strings.ContainsAny(v, "%+") {
			return 0, 0, false // "name" alone, or an escaped value
		}
		start = pairAt + len(k) + 1
		return start, start + len(v), true
	}
	return 0, 0, false
}

// unreserved reports whether s is made of RFC 3986's unreserved
// characters only, which no query encoder escapes.
func unreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}
