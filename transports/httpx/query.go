package httpx

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// QueryValue returns the first value of key in a raw query, unescaped,
// as url.Values.Get gives it, without building url.Values (a poll's
// query holds a long cursor).
func QueryValue(raw, key string) string {
	var v [1]string
	queryParams(raw, []string{key}, v[:])
	return v[0]
}

// queryParams sets vals[i] to the first value of names[i] in a raw query,
// unescaped, for each i, as url.ParseQuery and url.Values.Get give them:
// pairs with a semicolon or a bad escape in the name or the value are
// left out, so a later pair of the same name counts. It allocates only to
// unescape a name or a value that is escaped, and unescapes only the
// values of names, once each. Unlike url.ParseQuery it does not give up
// on a query of more than 10,000 pairs: the caller bounds the query's
// length, and nothing here grows with the pairs. len(names) is at most 8.
func queryParams(raw string, names, vals []string) {
	var seen [8]bool
	left := len(names)
	for raw != "" && left > 0 {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" || strings.Contains(kv, ";") {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		i := slices.Index(names, k)
		if i < 0 || seen[i] {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		vals[i], seen[i] = v, true
		left--
	}
}

// streamQuery is what a stream or poll request's query says: each
// parameter's first value, as url.Values.Get gives it.
type streamQuery struct {
	rooms, cursor, since string

	// The last cursor readCursor read: the user's position and the
	// subscription both read the request's cursor (cursor=, or
	// Last-Event-ID), and it is parsed once.
	readRaw string
	readCur protocol.Cursor
	readErr error
	read    bool
}

// readCursor returns protocol.ParseCursor(raw), parsing it only if it is
// not the cursor read last. The cursor is shared with the reader before:
// whoever changes it must be its last reader (parseSubscription).
func (q *streamQuery) readCursor(raw string) (protocol.Cursor, error) {
	if !q.read || q.readRaw != raw {
		q.readCur, q.readErr = protocol.ParseCursor(raw)
		q.readRaw, q.read = raw, true
	}
	return q.readCur, q.readErr
}

// streamParams names streamQuery's parameters in the order
// parseStreamQuery fills them.
var streamParams = []string{"rooms", "cursor", "since"}

// parseStreamQuery reads a raw query's rooms=, cursor= and since=.
func parseStreamQuery(raw string) streamQuery {
	var v [3]string
	queryParams(raw, streamParams, v[:])
	return streamQuery{rooms: v[0], cursor: v[1], since: v[2]}
}

// Batched reports whether a stream or poll request says, with batch=1,
// that its client reads batched receipt and presence envelopes.
func Batched(r *http.Request) bool { return QueryValue(r.URL.RawQuery, protocol.BatchParam) == "1" }
