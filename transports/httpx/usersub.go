package httpx

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ParseUserSubscription is ParseSubscription with the user's own stream
// (protocol.UserRoom, "~") added: the rooms returned end with it. Its
// position comes, like a room's, from Last-Event-ID, else from a "~:N"
// pair of since= (then it opens with a joined envelope, as a room given
// by since= does), else from the "~" entry of cursor=; with none it
// starts live and opens with a joined envelope. rooms= may be empty or
// absent: the request then follows the user's stream only, and since= may
// name nothing else. The user's stream counts against no room limit.
// The SSE and poll transports subscribe with it.
func ParseUserSubscription(r *http.Request, id auth.Identity, maxRooms int) ([]string, protocol.Cursor, map[string]bool, error) {
	// One more than the rooms: a cursor also holds the user's position.
	if err := checkQueryLen(r, maxRooms+1); err != nil {
		return nil, nil, nil, err
	}
	q := parseStreamQuery(r.URL.RawQuery) // parsed once, for both parts
	user, fresh, err := userPosition(r, &q, maxRooms+1)
	if err != nil {
		return nil, nil, nil, err
	}
	if fresh {
		// parseSubscription reads since= for rooms only: hand it the rest.
		q.since, _, _, _ = cutUserSince(q.since, maxRooms+1)
	}
	var (
		rooms      []string
		cur        protocol.Cursor
		freshRooms map[string]bool
	)
	switch n := countRooms(q.rooms); {
	case n > maxRooms:
		return nil, nil, nil, protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms per connection", maxRooms)
	case n == 0 && q.since != "" && r.Header.Get(lastEventID) == "":
		return nil, nil, nil, protocol.Errorf(protocol.CodeBadRequest, "since= names rooms that rooms= does not subscribe")
	case n > 0:
		if rooms, cur, freshRooms, err = parseSubscription(q, r.Header.Get(lastEventID), id, maxRooms+1); err != nil {
			return nil, nil, nil, err
		}
	}
	if user != nil {
		if cur == nil {
			cur = protocol.Cursor{}
		}
		cur[protocol.UserRoom] = *user
	}
	if fresh {
		if freshRooms == nil {
			freshRooms = map[string]bool{}
		}
		freshRooms[protocol.UserRoom] = true
	}
	return append(rooms, protocol.UserRoom), cur, freshRooms, nil
}

// userPosition returns the position in the user's stream that r resumes
// from, if any, and whether it came from since= (a fresh start).
func userPosition(r *http.Request, q *streamQuery, maxPairs int) (pos *uint64, fresh bool, err error) {
	raw := r.Header.Get(lastEventID)
	if raw == "" {
		if _, p, found, err := cutUserSince(q.since, maxPairs); err != nil || found {
			return p, found, err
		}
		raw = q.cursor
	}
	if raw == "" {
		return nil, false, nil
	}
	c, err := q.readCursor(raw) // the subscription reads it too
	if err != nil {
		return nil, false, err
	}
	if p, ok := c[protocol.UserRoom]; ok {
		return &p, false, nil
	}
	return nil, false, nil
}

// cutUserSince takes the "~:N" pair out of a since= value of at most
// maxPairs pairs: it returns the other pairs, the position and whether
// there was one. A longer value is refused before it is split.
func cutUserSince(since string, maxPairs int) (rest string, pos *uint64, found bool, err error) {
	if !strings.Contains(since, protocol.UserRoom+":") {
		return since, nil, false, nil
	}
	if len(since) > maxSinceLen(maxPairs) || strings.Count(since, ",") >= maxPairs {
		return "", nil, false, protocol.Errorf(protocol.CodeBadRequest, "since= holds more than %d room:seq pairs", maxPairs)
	}
	var others []string
	for _, pair := range strings.Split(since, ",") {
		seq, ok := strings.CutPrefix(pair, protocol.UserRoom+":")
		if !ok {
			others = append(others, pair)
			continue
		}
		p, perr := strconv.ParseUint(seq, 10, 64)
		if perr != nil || found {
			return "", nil, false, protocol.Errorf(protocol.CodeBadRequest, "since= takes room:seq pairs")
		}
		pos, found = &p, true
	}
	return strings.Join(others, ","), pos, found, nil
}

// countRooms counts the distinct room names of a rooms= value.
func countRooms(raw string) int {
	seen := map[string]bool{}
	for _, name := range strings.Split(raw, ",") {
		if name != "" {
			seen[name] = true
		}
	}
	return len(seen)
}

// ResumeQuery returns r's rooms= and cursor= values, as
// ParseUserSubscription reads them (each parameter's first, unescaped),
// and whether r resumes from cursor= alone: a cursor, no since= and no
// Last-Event-ID, in a query no longer than maxRooms rooms allow (a
// longer one is not read: "", "", false). A poll
// transport that kept the parse of an earlier request with the same
// values, for the same identity, may use it instead of parsing r; any
// other request goes through ParseUserSubscription.
func ResumeQuery(r *http.Request, maxRooms int) (rooms, cursor string, ok bool) {
	if checkQueryLen(r, maxRooms+1) != nil { // before anything is split or decoded
		return "", "", false
	}
	q := parseStreamQuery(r.URL.RawQuery)
	ok = q.cursor != "" && q.since == "" && r.Header.Get(lastEventID) == ""
	return q.rooms, q.cursor, ok
}
