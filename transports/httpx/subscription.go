package httpx

import (
	"net/http"
	"strings"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ParseSubscription reads rooms= and the cursor (Last-Event-ID first, then
// cursor=) and checks that id may use every room. A nil cursor means none
// was given.
func ParseSubscription(r *http.Request, id auth.Identity, maxRooms int) ([]string, protocol.Cursor, error) {
	q := r.URL.Query()
	var rooms []string
	seen := map[string]bool{}
	for _, name := range strings.Split(q.Get("rooms"), ",") {
		if name == "" || seen[name] {
			continue
		}
		if err := protocol.ValidRoom(name); err != nil {
			return nil, nil, err
		}
		if err := id.CanAccess(name); err != nil {
			return nil, nil, err
		}
		seen[name] = true
		rooms = append(rooms, name)
	}
	if len(rooms) == 0 {
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "rooms= must name at least one room")
	}
	if len(rooms) > maxRooms {
		return nil, nil, protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms per connection", maxRooms)
	}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = q.Get("cursor")
	}
	if raw == "" {
		return rooms, nil, nil
	}
	cur, err := protocol.ParseCursor(raw)
	return rooms, cur, err
}

// Advance returns the cursor after frames, for the given rooms only.
func Advance(cur protocol.Cursor, rooms []string, frames []core.Frame) protocol.Cursor {
	next := make(protocol.Cursor, len(rooms))
	for _, room := range rooms {
		if pos, ok := cur[room]; ok {
			next[room] = pos
		}
	}
	for _, f := range frames {
		if f.Positions() {
			if _, ok := next[f.Room]; ok || f.Type == protocol.TypeJoined {
				next[f.Room] = f.Seq
			}
		}
	}
	return next
}
