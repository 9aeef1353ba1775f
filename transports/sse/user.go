package sse

import (
	"net/http"
	"strings"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// subscription is httpx.ParseSubscription with the user's own stream
// (protocol.UserRoom, "~") added: the rooms returned end with it, and its
// position is the cursor's "~" entry (from Last-Event-ID, else cursor=),
// if any; without one it starts live and opens with a joined envelope.
// rooms= may be empty or absent: the request then follows the user's
// stream only (and since= is bad_request). The user's stream counts
// against no room limit.
//
// The same function is in transports/sse and transports/poll; it belongs
// in httpx.ParseSubscription, which is not this change's to edit.
func subscription(r *http.Request, id auth.Identity, maxRooms int) ([]string, protocol.Cursor, map[string]bool, error) {
	q := r.URL.Query()
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = q.Get("cursor")
	}
	var user *uint64
	if raw != "" {
		c, err := protocol.ParseCursor(raw)
		if err != nil {
			return nil, nil, nil, err
		}
		if p, ok := c[protocol.UserRoom]; ok {
			user = &p
		}
	}
	var (
		rooms []string
		cur   protocol.Cursor
		fresh map[string]bool
	)
	switch n := countRooms(q.Get("rooms")); {
	case n > maxRooms:
		return nil, nil, nil, protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms per connection", maxRooms)
	case n == 0 && q.Get("since") != "":
		return nil, nil, nil, protocol.Errorf(protocol.CodeBadRequest, "since= names rooms that rooms= does not subscribe")
	case n > 0:
		// One more than the rooms: a cursor also holds the user's position.
		var err error
		if rooms, cur, fresh, err = httpx.ParseSubscription(r, id, maxRooms+1); err != nil {
			return nil, nil, nil, err
		}
	}
	if user != nil {
		if cur == nil {
			cur = protocol.Cursor{}
		}
		cur[protocol.UserRoom] = *user
	}
	return append(rooms, protocol.UserRoom), cur, fresh, nil
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
