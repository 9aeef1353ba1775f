package httpx

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ParseSubscription reads rooms= and the starting positions, and checks
// that id may use every room. Positions come from, in order:
//   - the Last-Event-ID header: a browser's EventSource reconnect. It is
//     the newest position the stream reached, so it alone decides, even
//     though the reconnect repeats the original URL;
//   - otherwise cursor=, with since=room:seq,room:seq pairs on top. since=
//     is what a client that moves from WebSocket, or joins a room, knows.
//
// fresh lists the rooms whose position came from since= (a new
// subscription, which gets a joined envelope even on poll). A nil cursor
// means no position at all: live start.
func ParseSubscription(r *http.Request, id auth.Identity, maxRooms int) (rooms []string, cur protocol.Cursor, fresh map[string]bool, err error) {
	q := r.URL.Query()
	seen := map[string]bool{}
	for _, name := range strings.Split(q.Get("rooms"), ",") {
		if name == "" || seen[name] {
			continue
		}
		if err := protocol.ValidRoom(name); err != nil {
			return nil, nil, nil, err
		}
		if err := id.CanAccess(name); err != nil {
			return nil, nil, nil, err
		}
		seen[name] = true
		rooms = append(rooms, name)
	}
	if len(rooms) == 0 {
		return nil, nil, nil, protocol.Errorf(protocol.CodeBadRequest, "rooms= must name at least one room")
	}
	if len(rooms) > maxRooms {
		return nil, nil, nil, protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms per connection", maxRooms)
	}
	if raw := r.Header.Get("Last-Event-ID"); raw != "" {
		cur, err = protocol.ParseCursor(raw)
		return rooms, cur, nil, err
	}
	if raw := q.Get("cursor"); raw != "" {
		if cur, err = protocol.ParseCursor(raw); err != nil {
			return nil, nil, nil, err
		}
	}
	if s := q.Get("since"); s != "" {
		pairs, err := parseSince(s)
		if err != nil {
			return nil, nil, nil, err
		}
		if cur == nil {
			cur = protocol.Cursor{}
		}
		fresh = make(map[string]bool, len(pairs))
		for room, seq := range pairs {
			cur[room] = seq
			fresh[room] = true
		}
	}
	return rooms, cur, fresh, nil
}

// parseSince reads room:seq pairs separated by commas. Room names may hold
// colons (dm:a:b), so the seq is what follows the last one.
func parseSince(s string) (protocol.Cursor, error) {
	cur := protocol.Cursor{}
	for _, pair := range strings.Split(s, ",") {
		i := strings.LastIndexByte(pair, ':')
		if i <= 0 {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "since= takes room:seq pairs")
		}
		seq, err := strconv.ParseUint(pair[i+1:], 10, 64)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "since= takes room:seq pairs")
		}
		if err := protocol.ValidRoom(pair[:i]); err != nil {
			return nil, err
		}
		cur[pair[:i]] = seq
	}
	return cur, nil
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
