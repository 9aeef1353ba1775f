package httpx

import (
	"net/http"

	"github.com/chatd/chatd/core/protocol"
)

// ParseJoins reads the joins a WebSocket request makes in its query, so
// that a client that comes back resumes its rooms without a frame each:
// rooms= lists rooms (separated by commas, at most maxRooms), and since=
// gives room:seq positions for some of them and "~:N" for the user's own
// stream. It checks form and bounds, as ParseSubscription does and
// before anything is split (bad_request; too_many_rooms), but not access:
// each room is joined as a join envelope would be (core.Session.
// JoinRequested), and one the client may not use gets its own error
// reply while the others go on. since is nil when the query names
// nothing.
func ParseJoins(r *http.Request, maxRooms int) (rooms []string, since protocol.Cursor, err error) {
	// One more than the rooms: since= may also hold the user's position.
	if err := checkQueryLen(r, maxRooms+1); err != nil {
		return nil, nil, err
	}
	q := parseStreamQuery(r.URL.RawQuery)
	var subscribed map[string]bool
	if q.rooms != "" {
		if rooms, subscribed, err = parseRoomList(q.rooms, nil, maxRooms); err != nil {
			return nil, nil, err
		}
	}
	if q.since == "" {
		return rooms, nil, nil
	}
	rest, user, found, err := cutUserSince(q.since, maxRooms+1)
	if err != nil {
		return nil, nil, err
	}
	since = protocol.Cursor{}
	if rest != "" {
		if since, err = parseSince(rest, subscribed, maxRooms); err != nil {
			return nil, nil, err
		}
	}
	if found {
		since[protocol.UserRoom] = *user
	}
	return rooms, since, nil
}
